import { formatDay, formatPercent } from "@/lib/format";
import { cn } from "@/lib/utils";

/** ▲/▼ and the percent against the previous period ("—" when it had nothing to compare with). */
export function ChangeBadge({ change, previous, testId }: { change: number | null; previous: { from: string; to: string }; testId?: string }) {
  const title = `vs ${formatDay(previous.from)} – ${formatDay(previous.to)}`;
  if (change === null) {
    return (
      <p data-testid={testId} title={title} className="text-xs text-muted-foreground">
        — vs previous
      </p>
    );
  }
  const arrow = change > 0 ? "▲" : change < 0 ? "▼" : "";
  return (
    <p data-testid={testId} title={title} className={cn("text-xs tabular-nums", change > 0 ? "text-warning" : "text-muted-foreground")}>
      {arrow} {formatPercent(Math.abs(change))} vs previous
    </p>
  );
}
