import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from "recharts";
import type { Decisions } from "@/api/types";
import { ChartFrame } from "@/features/charts/ChartFrame";
import { axisTick, legendStyle, seriesColor, tooltipStyle } from "@/features/charts/chartTheme";
import { partialArea, partialSpan } from "@/features/charts/PartialDay";
import { formatCompact, formatCount, formatDay } from "@/lib/format";
import { useChartAnimation } from "@/lib/motion";

/** Decisions per day, stacked by action (ALLOW, DOWNGRADE, DEFER, DENY). */
export function DecisionsChart({ data }: { data: Decisions }) {
  const animate = useChartAnimation();
  const rows = data.series.map((row) => ({ ...row, day: formatDay(row.date) }));
  const partial = partialSpan(
    data.series.map((row) => row.date),
    data.partial_date ?? undefined,
  );
  return (
    <ChartFrame label="Throttle decisions per day, stacked by action">
      <BarChart data={rows} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="day" tick={axisTick} tickLine={false} axisLine={false} minTickGap={16} />
        <YAxis tick={axisTick} tickLine={false} axisLine={false} width={40} tickFormatter={formatCompact} allowDecimals={false} />
        <Tooltip {...tooltipStyle} formatter={(value) => formatCount(Number(value))} />
        <Legend wrapperStyle={legendStyle} itemSorter={null} />
        {data.actions.map((action, index) => (
          <Bar isAnimationActive={animate} key={action} dataKey={action} name={action} stackId="actions" fill={seriesColor(index)} />
        ))}
        {partialArea(partial)}
      </BarChart>
    </ChartFrame>
  );
}
