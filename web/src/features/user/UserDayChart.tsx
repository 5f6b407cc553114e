import { Area, AreaChart, CartesianGrid, Tooltip, XAxis, YAxis } from "recharts";
import type { UserDetail } from "@/api/types";
import { ChartFrame } from "@/features/charts/ChartFrame";
import { axisTick, seriesColor, tooltipStyle } from "@/features/charts/chartTheme";
import { partialArea, partialSpan } from "@/features/charts/PartialDay";
import { formatDay, formatUsdCompact, formatUsdNumber, toChartNumber } from "@/lib/format";
import { useChartAnimation } from "@/lib/motion";

/** The user's cost per day. */
export function UserDayChart({ detail }: { detail: UserDetail }) {
  const animate = useChartAnimation();
  const rows = detail.days_series.map((row) => ({ day: formatDay(row.date), cost: toChartNumber(row.cost_usd) }));
  const partial = partialSpan(
    detail.days_series.map((row) => row.date),
    detail.partial_date ?? undefined,
  );
  return (
    <ChartFrame label={`${detail.user_id}'s cost per day`} className="h-48">
      <AreaChart data={rows} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="day" tick={axisTick} tickLine={false} axisLine={false} minTickGap={16} />
        <YAxis tick={axisTick} tickLine={false} axisLine={false} width={52} tickFormatter={formatUsdCompact} />
        <Tooltip {...tooltipStyle} formatter={(value) => formatUsdNumber(Number(value))} />
        <Area isAnimationActive={animate} type="monotone" dataKey="cost" name="Cost" stroke={seriesColor(0)} fill={seriesColor(0)} fillOpacity={0.3} />
        {partialArea(partial)}
      </AreaChart>
    </ChartFrame>
  );
}
