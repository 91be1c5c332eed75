import {
  formatClock,
  formatRate,
  formatThroughput,
  formatGiB,
  formatPercent,
  formatPower,
  formatTemperature,
  percentOf
} from '../format';

describe('format', () => {
  it('shows MiB as GiB the way nvidia-smi users read it', () => {
    // 25.1 GiB used of 140.4 GiB: the H200 replay under load.
    expect(formatGiB(25697)).toBe('25.1 GiB');
    expect(formatGiB(143771)).toBe('140.4 GiB');
  });

  it('shows a dash, never 0, for values a GPU does not report', () => {
    expect(formatGiB(null)).toBe('–');
    expect(formatPercent(null)).toBe('–');
    expect(formatTemperature(undefined)).toBe('–');
    expect(formatClock(null)).toBe('–');
    expect(formatPower(null, 700)).toBe('–');
  });

  it('shows power against its limit only when the GPU has one', () => {
    expect(formatPower(689.6, 700)).toBe('690 / 700 W');
    // GeForce cards often report no power limit.
    expect(formatPower(120.2, null)).toBe('120 W');
  });

  it('computes a percentage only from known values, within 0–100', () => {
    expect(percentOf(25697, 143771)).toBeCloseTo(17.87, 1);
    expect(percentOf(null, 143771)).toBeNull();
    expect(percentOf(10, 0)).toBeNull();
    expect(percentOf(200, 100)).toBe(100);
    expect(formatPercent(17.87)).toBe('18 %');
  });
});

describe('PCIe / NVLink throughput', () => {
  it('reads as received and sent, in binary units', () => {
    expect(formatThroughput(1536, 320)).toBe('RX 1.5 GiB/s · TX 320 MiB/s');
    expect(formatRate(2.25)).toBe('2.3 MiB/s');
    expect(formatRate(0)).toBe('0.0 MiB/s');
  });

  it('is a dash when nothing was measured yet (the first reading has no rate)', () => {
    expect(formatThroughput(null, undefined)).toBe('–');
    expect(formatThroughput(12, null)).toBe('RX 12 MiB/s · TX –');
  });
});
