import { REFRESH_MS, useSummary } from "@/api/hooks";
import { formatDay } from "@/lib/format";

/** Which days the page shows, in which time zone, that today is so far, and that it refreshes by itself. */
export function WindowLine({ range }: { range: string }) {
  const { data, isFetching } = useSummary(range);
  return (
    <p className="min-h-4 text-xs text-muted-foreground" data-testid="window" aria-live="polite">
      {data ? `${formatDay(data.from)} – ${formatDay(data.to)} · ${data.timezone} · ` : ""}
      {data?.partial_date ? (
        <span data-testid="window-partial" className="font-medium text-warning">
          {formatDay(data.partial_date)} is today so far ·{" "}
        </span>
      ) : null}
      {isFetching ? "refreshing…" : `refreshes every ${REFRESH_MS / 1000} s`}
    </p>
  );
}
