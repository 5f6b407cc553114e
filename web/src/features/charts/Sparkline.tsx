import { Area, AreaChart, ResponsiveContainer } from "recharts";
import { toChartNumber } from "@/lib/format";

interface SparklineProps {
  values: readonly (number | string)[];
  label: string;
  /** The last value is today's so far: drawn dashed and lighter, not as a finished day. */
  partialLast?: boolean;
}

/** A tiny trend line under a card's number; nothing is drawn for fewer than two points. */
export function Sparkline({ values, label, partialLast = false }: SparklineProps) {
  if (values.length < 2) return <div className="h-8" aria-hidden="true" />;
  const last = values.length - 1;
  // Two series: the full days, and the segment from the last full day to today so far.
  const data = values.map((value, index) => {
    const number = toChartNumber(value);
    return {
      index,
      value: partialLast && index === last ? null : number,
      partial: partialLast && index >= last - 1 ? number : null,
    };
  });
  return (
    <div
      className="h-8 w-full min-w-0"
      role="img"
      aria-label={partialLast ? `${label}; the last point is today so far` : label}
      data-partial-last={partialLast ? "true" : undefined}
    >
      <ResponsiveContainer width="100%" height="100%" initialDimension={{ width: 120, height: 32 }}>
        <AreaChart data={data} margin={{ top: 2, right: 0, bottom: 2, left: 0 }}>
          <Area
            type="monotone"
            dataKey="value"
            stroke="var(--chart-1)"
            fill="var(--chart-1)"
            fillOpacity={0.2}
            strokeWidth={1.5}
            isAnimationActive={false}
          />
          {partialLast && (
            <Area
              type="monotone"
              dataKey="partial"
              className="sparkline-partial"
              stroke="var(--chart-1)"
              strokeOpacity={0.6}
              strokeDasharray="3 2"
              fill="var(--chart-1)"
              fillOpacity={0.08}
              strokeWidth={1.5}
              isAnimationActive={false}
            />
          )}
        </AreaChart>
      </ResponsiveContainer>
    </div>
  );
}
