/** Pure formatting helpers: no DOM, tested on their own. */

const MIB_PER_GIB = 1024;

/** "25.1 GiB" from MiB; "–" when unknown. */
export function formatGiB(mib: number | null | undefined, digits = 1): string {
  if (mib === null || mib === undefined || !Number.isFinite(mib)) {
    return '–';
  }
  return `${(mib / MIB_PER_GIB).toFixed(digits)} GiB`;
}

/** Share of `total` taken by `used`, 0–100, or null when either is unknown. */
export function percentOf(
  used: number | null | undefined,
  total: number | null | undefined
): number | null {
  if (
    used === null ||
    used === undefined ||
    total === null ||
    total === undefined ||
    !(total > 0)
  ) {
    return null;
  }
  return Math.min(100, Math.max(0, (used / total) * 100));
}

/** "42 %" / "–". */
export function formatPercent(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '–';
  }
  return `${Math.round(value)} %`;
}

/** "71 °C" / "–". */
export function formatTemperature(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '–';
  }
  return `${Math.round(value)} °C`;
}

/** "690 / 700 W", "690 W" without a limit, "–" without a reading. */
export function formatPower(
  draw: number | null | undefined,
  limit: number | null | undefined
): string {
  if (draw === null || draw === undefined || !Number.isFinite(draw)) {
    return '–';
  }
  if (limit === null || limit === undefined || !Number.isFinite(limit)) {
    return `${Math.round(draw)} W`;
  }
  return `${Math.round(draw)} / ${Math.round(limit)} W`;
}

/** "1980 MHz" / "–". */
export function formatClock(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '–';
  }
  return `${Math.round(value)} MHz`;
}

/** "1.2 GiB/s" / "320 MiB/s" / "0 MiB/s" from MiB/s; "–" when unknown. */
export function formatRate(mibPerS: number | null | undefined): string {
  if (mibPerS === null || mibPerS === undefined || !Number.isFinite(mibPerS)) {
    return '–';
  }
  if (mibPerS >= 1024) {
    return `${(mibPerS / 1024).toFixed(1)} GiB/s`;
  }
  return `${mibPerS >= 10 ? Math.round(mibPerS) : mibPerS.toFixed(1)} MiB/s`;
}

/** "RX 1.2 GiB/s · TX 320 MiB/s" (received and sent by the GPU); "–" when neither is known. */
export function formatThroughput(
  rx: number | null | undefined,
  tx: number | null | undefined
): string {
  if ((rx ?? null) === null && (tx ?? null) === null) {
    return '–';
  }
  return `RX ${formatRate(rx)} · TX ${formatRate(tx)}`;
}

/**
 * A clock time in the user's locale ("14:32" or "2:32 PM"): the one time format of every view
 * (the chart's pointer, the training card's ETA and deadline). `locale` is for tests.
 */
export function formatClockTime(
  date: Date,
  withSeconds = false,
  locale?: string
): string {
  return date.toLocaleTimeString(locale, {
    hour: '2-digit',
    minute: '2-digit',
    ...(withSeconds ? { second: '2-digit' } : {})
  });
}
