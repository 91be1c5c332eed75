import { decimate } from '../chart';

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
