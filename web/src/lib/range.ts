// The dashboard's date range, kept in the URL: ?days=7|30|90, or ?from=YYYY-MM-DD&to=YYYY-MM-DD
// (this month, last month, or a custom range). Anything else falls back to 7 days.
import { useCallback } from "react";
import { navigate, useSearch } from "./location";

export type Preset = "7d" | "30d" | "90d" | "this-month" | "last-month" | "custom";

export const PRESETS: readonly { value: Exclude<Preset, "custom">; label: string }[] = [
  { value: "7d", label: "7 days" },
  { value: "30d", label: "30 days" },
  { value: "90d", label: "90 days" },
  { value: "this-month", label: "This month" },
  { value: "last-month", label: "Last month" },
];

export const MAX_RANGE_DAYS = 92;
const PRESET_DAYS: Partial<Record<Preset, number>> = { "7d": 7, "30d": 30, "90d": 90 };
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

export interface Range {
  preset: Preset;
  /** The first and last day (both included), in the gateway's time zone. */
  from: string;
  to: string;
  /** The API's range parameters: "days=7" or "from=...&to=...". */
  query: string;
}

export interface RangeChoice {
  preset: Preset;
  from?: string;
  to?: string;
}

function parseDate(text: string): Date | null {
  if (!ISO_DATE.test(text)) return null;
  const date = new Date(`${text}T00:00:00Z`);
  return Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== text ? null : date;
}

const isoOf = (date: Date) => date.toISOString().slice(0, 10);

/** Today's date where the browser is: only for a gateway too old to send its own `today`. */
export function localToday(): string {
  const now = new Date();
  return isoOf(new Date(Date.UTC(now.getFullYear(), now.getMonth(), now.getDate())));
}

/** Days from `from` to `to`, both included. */
export function daysBetween(from: string, to: string): number {
  const a = parseDate(from);
  const b = parseDate(to);
  return a && b ? Math.round((b.getTime() - a.getTime()) / 86_400_000) + 1 : Number.NaN;
}

/** The date `days` days before `date`. */
export function daysBefore(date: string, days: number): string {
  const day = parseDate(date) ?? new Date();
  return isoOf(new Date(day.getTime() - days * 86_400_000));
}

/** Why a custom range is refused, or null when it is fine. */
export function validateCustom(from: string, to: string, today: string): string | null {
  if (!parseDate(from) || !parseDate(to)) return "Enter both dates.";
  if (from > to) return "The start date must not be after the end date.";
  if (to > today) return "The end date must not be after today.";
  if (daysBetween(from, to) > MAX_RANGE_DAYS) return `At most ${MAX_RANGE_DAYS} days.`;
  return null;
}

/** This month (up to today) and last month, from the gateway's `today`. */
export function monthRange(preset: "this-month" | "last-month", today: string): { from: string; to: string } {
  const day = parseDate(today) ?? new Date();
  const year = day.getUTCFullYear();
  const month = day.getUTCMonth();
  if (preset === "this-month") return { from: isoOf(new Date(Date.UTC(year, month, 1))), to: isoOf(day) };
  return { from: isoOf(new Date(Date.UTC(year, month - 1, 1))), to: isoOf(new Date(Date.UTC(year, month, 0))) };
}

function datesPreset(from: string, to: string, today: string): Preset {
  for (const preset of ["this-month", "last-month"] as const) {
    const month = monthRange(preset, today);
    if (month.from === from && month.to === to) return preset;
  }
  return "custom";
}

/** Reads the URL's range; `today` (the gateway's) places the days and tells the months apart. */
export function readRange(search: string, today: string): Range {
  const params = new URLSearchParams(search);
  const from = params.get("from");
  const to = params.get("to");
  if (from !== null && to !== null && validateCustom(from, to, today) === null) {
    return { preset: datesPreset(from, to, today), from, to, query: new URLSearchParams({ from, to }).toString() };
  }
  const days = Number(params.get("days"));
  const preset = (Object.keys(PRESET_DAYS) as Preset[]).find((key) => PRESET_DAYS[key] === days) ?? "7d";
  const count = PRESET_DAYS[preset] ?? 7;
  return { preset, from: daysBefore(today, count - 1), to: today, query: `days=${count}` };
}

/** The URL's search for a range, keeping every other parameter (e.g. ?user=). */
export function writeRange(search: string, next: RangeChoice, today: string): string {
  const params = new URLSearchParams(search);
  for (const key of ["range", "from", "to", "days"]) params.delete(key);
  const { preset } = next;
  if (preset === "this-month" || preset === "last-month" || preset === "custom") {
    const dates = preset === "custom" ? { from: next.from ?? "", to: next.to ?? "" } : monthRange(preset, today);
    params.set("from", dates.from);
    params.set("to", dates.to);
  } else {
    params.set("days", String(PRESET_DAYS[preset] ?? 7));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** The range from the URL; setting it pushes a history entry, and back/forward read it again. */
export function useRange(today: string): [Range, (next: RangeChoice) => void] {
  const search = useSearch();
  const setRange = useCallback(
    (next: RangeChoice) => {
      const nextSearch = writeRange(window.location.search, next, today);
      // The same range again (e.g. a preset picked after opening "Custom…") adds no history entry.
      if (nextSearch !== window.location.search) navigate(nextSearch);
    },
    [today],
  );
  return [readRange(search, today), setRange];
}
