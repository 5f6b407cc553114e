import { ReferenceArea } from "recharts";
import { formatDay } from "@/lib/format";

/**
 * Today's figures are today's so far (the gateway's `partial_date`): a chart must not draw
 * them as a finished day. Each chart shades the stretch from the day before to today, outlined
 * dashed, and says so under it.
 */
export interface PartialSpan {
  /** The day before today's label on the chart's category axis (today's, if it is the first). */
  x1: string;
  x2: string;
}

export function partialSpan(dates: readonly string[], partialDate: string | undefined): PartialSpan | null {
  const index = partialDate === undefined ? -1 : dates.indexOf(partialDate);
  if (partialDate === undefined || index < 0) return null;
  return { x1: formatDay(dates[index - 1] ?? partialDate), x2: formatDay(partialDate) };
}

/** The ReferenceArea's look: lighter than the data, outlined dashed. */
export const PARTIAL_AREA_STYLE = {
  fill: "var(--muted-foreground)",
  fillOpacity: 0.12,
  stroke: "var(--muted-foreground)",
  strokeOpacity: 0.7,
  strokeDasharray: "4 3",
} as const;

export const PARTIAL_LABEL = "today so far";

/**
 * The shaded stretch itself, or null. Called as a function, not rendered as a component:
 * Recharts draws only its own elements placed directly in a chart.
 */
export function partialArea(partial: PartialSpan | null, yAxisId?: string) {
  if (partial === null) return null;
  return (
    <ReferenceArea
      {...(yAxisId === undefined ? {} : { yAxisId })}
      x1={partial.x1}
      x2={partial.x2}
      {...PARTIAL_AREA_STYLE}
      label={{ value: PARTIAL_LABEL, position: "insideTop", fill: "var(--muted-foreground)", fontSize: 10 }}
    />
  );
}

/** The legend entry for the shaded stretch. */
export function PartialDayNote({ date }: { date: string }) {
  return (
    <p data-testid="partial-day-note" className="mt-2 flex items-center gap-2 text-xs text-muted-foreground">
      <span
        aria-hidden="true"
        className="inline-block h-3 w-4 shrink-0 rounded-sm border border-dashed border-muted-foreground bg-muted-foreground/15"
      />
      <span>
        Shaded, dashed: {formatDay(date)} is {PARTIAL_LABEL}, a partial day
      </span>
    </p>
  );
}
