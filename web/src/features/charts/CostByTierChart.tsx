import { Area, AreaChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from "recharts";
import type { CostByTierRow } from "@/api/types";
import { formatDay, formatUsdCompact, formatUsdNumber, toChartNumber } from "@/lib/format";
import { ChartFrame } from "./ChartFrame";
import { axisTick, legendStyle, seriesColor, tooltipStyle } from "./chartTheme";
import { partialArea, partialSpan } from "./PartialDay";
import { useChartAnimation } from "@/lib/motion";

/** Tier names in the order the gateway lists them, from every row (a tier may start mid-window). */
export function tiersOf(rows: readonly CostByTierRow[]): string[] {
  const tiers = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) if (key !== "date") tiers.add(key);
  return [...tiers];
}

export function hasCost(rows: readonly CostByTierRow[]): boolean {
  return rows.some((row) => Object.entries(row).some(([key, value]) => key !== "date" && toChartNumber(value) !== 0));
}

type ChartRow = { day: string } & Record<string, number | string>;

export function CostByTierChart({ rows, partialDate }: { rows: readonly CostByTierRow[]; partialDate?: string }) {
  const animate = useChartAnimation();
  const partial = partialSpan(
    rows.map((row) => row.date),
    partialDate,
  );
  const tiers = tiersOf(rows);
  const data: ChartRow[] = rows.map((row) => {
    const point: ChartRow = { day: formatDay(row.date) };
    for (const tier of tiers) point[tier] = toChartNumber(row[tier]);
    return point;
  });
  return (
    <ChartFrame label="Cost per day, stacked by tier">
      <AreaChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="day" tick={axisTick} tickLine={false} axisLine={false} minTickGap={16} />
        <YAxis tick={axisTick} tickLine={false} axisLine={false} width={52} tickFormatter={formatUsdCompact} />
        <Tooltip {...tooltipStyle} formatter={(value) => formatUsdNumber(Number(value))} />
        <Legend wrapperStyle={legendStyle} itemSorter={null} />
        {tiers.map((tier, index) => (
          <Area isAnimationActive={animate}
            key={tier}
            type="monotone"
            dataKey={tier}
            name={tier}
            stackId="cost"
            stroke={seriesColor(index)}
            fill={seriesColor(index)}
            fillOpacity={0.35}
          />
        ))}
        {partialArea(partial)}
      </AreaChart>
    </ChartFrame>
  );
}
