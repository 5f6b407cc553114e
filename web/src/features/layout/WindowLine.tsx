import { REFRESH_MS, useSummary } from "@/api/hooks";
import type { Days } from "@/api/types";
import { formatDay } from "@/lib/format";

/** Which days the page shows, in which time zone, and that it refreshes by itself. */
export function WindowLine({ days }: { days: Days }) {
  const { data, isFetching } = useSummary(days);
  return (
    <p className="min-h-4 text-xs text-muted-foreground" data-testid="window" aria-live="polite">
      {data ? `${formatDay(data.from)} – ${formatDay(data.to)} · ${data.timezone} · ` : ""}
      {isFetching ? "refreshing…" : `refreshes every ${REFRESH_MS / 1000} s`}
    </p>
  );
}
