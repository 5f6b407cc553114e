// Display formatting. Money arrives as decimal strings and is formatted from the string:
// Intl.NumberFormat accepts a numeric string and rounds it exactly, so no float is involved.

const DECIMAL = /^-?\d+(\.\d+)?$/;
const LOCALE = "en-US";

const usd2 = new Intl.NumberFormat(LOCALE, { style: "currency", currency: "USD" });
// The exact figure, for the title: every decimal the gateway sent (at least two).
const usdExact = new Intl.NumberFormat(LOCALE, {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 20,
});
const usdCompact = new Intl.NumberFormat(LOCALE, {
  style: "currency",
  currency: "USD",
  notation: "compact",
  maximumFractionDigits: 2,
});
const whole = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(LOCALE, { notation: "compact", maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });

export function isDecimalString(value: string): value is Intl.StringNumericLiteral {
  return DECIMAL.test(value);
}

const UNDER_ONE_CENT = /^-?0\.00\d*$/;

function isZero(text: string): boolean {
  return /^-?0(\.0*)?$/.test(text);
}

/**
 * The money rule, everywhere: cents with thousands separators ("$1,234.50"); a nonzero amount
 * under one cent is "<$0.01" ("-<$0.01" below zero); anything not a decimal string is "—".
 * Show it with {@link formatUsdExact} in the element's title (components/Usd.tsx does both).
 */
export function formatUsd(value: string): string {
  const text = value.trim();
  if (!isDecimalString(text)) return "—";
  if (!isZero(text) && UNDER_ONE_CENT.test(text)) return text.startsWith("-") ? "-<$0.01" : "<$0.01";
  return usd2.format(text);
}

/** Every decimal of the figure: "$0.00036", "$1,234.50"; "—" when it is not a decimal string. */
export function formatUsdExact(value: string): string {
  const text = value.trim();
  return isDecimalString(text) ? usdExact.format(text) : "—";
}

/** For chart axes and tooltips, where a float is fine: "$1.2K". */
export function formatUsdCompact(value: number): string {
  return usdCompact.format(value);
}

export function formatCount(value: number | string): string {
  if (typeof value === "string") {
    const text = value.trim();
    return isDecimalString(text) ? whole.format(text) : "—";
  }
  return Number.isFinite(value) ? whole.format(value) : "—";
}

export function formatCompact(value: number): string {
  return Number.isFinite(value) ? compact.format(value) : "—";
}

/** A fraction (0.23) as a percent ("23%"). */
export function formatPercent(fraction: number): string {
  return Number.isFinite(fraction) ? percent.format(fraction) : "—";
}

/** CPU milliseconds as the largest sensible unit: "850 ms", "3.2 min", "1.4 h". */
export function formatDurationMs(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const units: [number, string][] = [
    [3_600_000, "h"],
    [60_000, "min"],
    [1_000, "s"],
  ];
  for (const [size, unit] of units) {
    if (Math.abs(ms) >= size) return `${(ms / size).toFixed(1)} ${unit}`;
  }
  return `${Math.round(ms)} ms`;
}

/** "18:05" for an ISO instant, in the gateway's reporting time zone. */
export function formatClock(iso: string, timeZone: string): string {
  const instant = new Date(iso);
  if (Number.isNaN(instant.getTime())) return "—";
  const options: Intl.DateTimeFormatOptions = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  try {
    return new Intl.DateTimeFormat("en-GB", { ...options, timeZone }).format(instant);
  } catch {
    return new Intl.DateTimeFormat("en-GB", { ...options, timeZone: "UTC" }).format(instant);
  }
}

/** "Nov 19" for a calendar date "2026-11-19" (a date, not an instant: no time-zone shift). */
export function formatDay(isoDate: string): string {
  const day = new Date(`${isoDate}T00:00:00Z`);
  if (Number.isNaN(day.getTime())) return isoDate;
  return new Intl.DateTimeFormat(LOCALE, { month: "short", day: "numeric", timeZone: "UTC" }).format(day);
}

export function formatDateTime(iso: string): string {
  const instant = new Date(iso);
  if (Number.isNaN(instant.getTime())) return iso;
  return new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short" }).format(instant);
}

/** Chart values: decimal strings and numbers alike become numbers (a float is fine for drawing). */
export function toChartNumber(value: string | number | null | undefined): number {
  const number = typeof value === "number" ? value : Number(value ?? 0);
  return Number.isFinite(number) ? number : 0;
}

/** A chart's (float) dollar value in a tooltip, by the same rule as {@link formatUsd}. */
export function formatUsdNumber(value: number): string {
  if (!Number.isFinite(value)) return "—";
  return formatUsd(String(value).includes("e") ? value.toFixed(10) : String(value));
}

/** A change against the previous period: "▲ 25%", "▼ 10%", "0%"; "—" when there was nothing to compare with. */
export function formatChange(change: number | null): string {
  if (change === null || !Number.isFinite(change)) return "—";
  return `${change > 0 ? "▲" : change < 0 ? "▼" : ""} ${formatPercent(Math.abs(change))}`.trim();
}
