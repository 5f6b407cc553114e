import { useCallback, useState } from "react";
import type { Days } from "@/api/types";

export function readDays(search: string): Days {
  return new URLSearchParams(search).get("days") === "30" ? 30 : 7;
}

/** The 7/30-day window, kept in the URL (?days=30) so a reload or a shared link keeps it. */
export function useDays(): [Days, (next: Days) => void] {
  const [days, setDaysState] = useState<Days>(() => readDays(window.location.search));
  const setDays = useCallback((next: Days) => {
    setDaysState(next);
    const url = new URL(window.location.href);
    url.searchParams.set("days", String(next));
    window.history.replaceState(window.history.state, "", url);
  }, []);
  return [days, setDays];
}
