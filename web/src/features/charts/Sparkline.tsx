import { Area, AreaChart, ResponsiveContainer } from "recharts";
import { toChartNumber } from "@/lib/format";

interface SparklineProps {
  values: readonly (number | string)[];
  label: string;
}

/** A tiny trend line under a card's number; nothing is drawn for fewer than two points. */
export function Sparkline({ values, label }: SparklineProps) {
  if (values.length < 2) return <div className="h-8" aria-hidden="true" />;
  const data = values.map((value, index) => ({ index, value: toChartNumber(value) }));
  return (
    <div className="h-8 w-full min-w-0" role="img" aria-label={label}>
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
        </AreaChart>
      </ResponsiveContainer>
    </div>
  );
}
