// The dashboard's date range, kept in the URL: ?range=7d|30d|90d|this-month|last-month, or
// ?from=YYYY-MM-DD&to=YYYY-MM-DD (custom). Anything else falls back to 7d.
import { useCallback, useEffect, useState } from "react";

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
  from?: string;
  to?: string;
  /** The API's range parameters: "days=7" or "from=...&to=...". */
  query: string;
}

function parseDate(text: string): Date | null {
  if (!ISO_DATE.test(text)) return null;
  const date = new Date(`${text}T00:00:00Z`);
  return Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== text ? null : date;
}

const isoOf = (date: Date) => date.toISOString().slice(0, 10);

/** Days from `from` to `to`, both included. */
export function daysBetween(from: string, to: string): number {
  const a = parseDate(from);
  const b = parseDate(to);
  return a && b ? Math.round((b.getTime() - a.getTime()) / 86_400_000) + 1 : Number.NaN;
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

function rangeParams(from: string, to: string): string {
  return new URLSearchParams({ from, to }).toString();
}

/** Reads the URL's range; `today` (the gateway's) places this and last month. */
export function readRange(search: string, today: string): Range {
  const params = new URLSearchParams(search);
  const from = params.get("from");
  const to = params.get("to");
  if (from !== null && to !== null && validateCustom(from, to, today) === null) {
    return { preset: "custom", from, to, query: rangeParams(from, to) };
  }
  const preset = params.get("range");
  if (preset === "this-month" || preset === "last-month") {
    const dates = monthRange(preset, today);
    return { preset, ...dates, query: rangeParams(dates.from, dates.to) };
  }
  const days = preset === null ? undefined : PRESET_DAYS[preset as Preset];
  if (preset !== null && days !== undefined) return { preset: preset as Preset, query: `days=${days}` };
  return { preset: "7d", query: "days=7" };
}

/** The URL's search for a range, keeping every other parameter (e.g. ?user=). */
export function writeRange(search: string, next: { preset: Preset; from?: string; to?: string }): string {
  const params = new URLSearchParams(search);
  params.delete("range");
  params.delete("from");
  params.delete("to");
  params.delete("days");
  if (next.preset === "custom" && next.from && next.to) {
    params.set("from", next.from);
    params.set("to", next.to);
  } else {
    params.set("range", next.preset);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** The range from the URL; setting it pushes a history entry, and back/forward (popstate) reads it again. */
export function useRange(today: string): [Range, (next: { preset: Preset; from?: string; to?: string }) => void] {
  const [search, setSearch] = useState(() => window.location.search);
  useEffect(() => {
    const onPop = () => setSearch(window.location.search);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const setRange = useCallback((next: { preset: Preset; from?: string; to?: string }) => {
    const nextSearch = writeRange(window.location.search, next);
    window.history.pushState(window.history.state, "", `${window.location.pathname}${nextSearch}${window.location.hash}`);
    setSearch(nextSearch);
  }, []);
  return [readRange(search, today), setRange];
}
