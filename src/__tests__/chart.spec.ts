import {
  chartHeight,
  decimate,
  relativeLabel,
  sampleNear,
  timeTicks
} from '../views/chart';

describe('decimate', () => {
  const series = {
    t: Array.from({ length: 600 }, (_, i) => 1000 + i),
    util: Array.from({ length: 600 }, (_, i) => (i === 301 ? 100 : 10)),
    mem: Array.from({ length: 600 }, () => 18 as number | null)
  };

  it('keeps at most one point per pixel and never hides a spike', () => {
    const [t, util, mem] = decimate(series, 212);
    expect(t.length).toBe(212);
    expect(util.length).toBe(212);
    expect(Math.max(...(util as number[]))).toBe(100);
    expect(new Set(mem)).toEqual(new Set([18]));
    // Time still runs forward and ends at the newest reading.
    expect([...(t as number[])].sort((a, b) => a - b)).toEqual(t);
    expect(t[t.length - 1]).toBe(1599);
  });

  it('leaves a short history as it is', () => {
    const short = { t: [1, 2, 3], util: [5, null, 7], mem: [1, 2, 3] };
    const [t, util] = decimate(short, 212);
    expect(t).toBe(short.t);
    expect(util).toEqual([5, null, 7]);
  });
});

describe('the time axis', () => {
  it('counts back from now in whole steps that leave room for each label', () => {
    // 5 minutes in a narrow sidebar (280 px: room for 4 labels): every 2 minutes.
    const ticks = timeTicks(1000, 1300, 280);
    expect(ticks.map(t => relativeLabel(1300 - t))).toEqual([
      '-4 min',
      '-2 min',
      'now'
    ]);
  });

  it('puts more labels on a wider chart', () => {
    expect(timeTicks(0, 300, 900).length).toBeGreaterThan(
      timeTicks(0, 300, 280).length
    );
  });

  it('labels seconds, minutes and hours the way people say them', () => {
    expect(relativeLabel(0)).toBe('now');
    expect(relativeLabel(30)).toBe('-30 s');
    expect(relativeLabel(120)).toBe('-2 min');
    expect(relativeLabel(90)).toBe('-1.5 min');
    expect(relativeLabel(7200)).toBe('-2 h');
  });
});

describe('the chart height', () => {
  it('grows with the width, within bounds', () => {
    expect(chartHeight(200)).toBe(96);
    expect(chartHeight(548)).toBeGreaterThan(150);
    expect(chartHeight(5000)).toBe(200);
    expect(chartHeight(320, 140)).toBe(140);
  });
});

describe('the reading under the pointer', () => {
  // Readings every second from t = 1000 to 1010 in a window that starts far earlier.
  const t = Array.from({ length: 11 }, (_, i) => 1000 + i);

  it('is the closest reading when the pointer is over the readings', () => {
    expect(sampleNear(t, 4, 1004.3, 2)).toBe(4);
    expect(sampleNear(t, 10, 1011, 2)).toBe(10);
  });

  it('is none over the empty part of the chart, not the oldest reading', () => {
    // uPlot snaps the cursor to reading 0 however far left of it the pointer is.
    expect(sampleNear(t, 0, 700, 2)).toBeNull();
    expect(sampleNear(t, 10, 1100, 2)).toBeNull();
    expect(sampleNear(t, null, 1004, 2)).toBeNull();
    expect(sampleNear(t, 3, NaN, 2)).toBeNull();
  });
});
