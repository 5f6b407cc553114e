import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from "recharts";
import type { JobsByDomainRow } from "@/api/types";
import { formatCompact, formatCount } from "@/lib/format";
import { ChartFrame } from "./ChartFrame";
import { axisTick, legendStyle, seriesColor, tooltipStyle } from "./chartTheme";
import { useChartAnimation } from "@/lib/motion";

/** Queue wait on the axis: "900ms", "1.8s" (short enough not to wrap on a phone). */
const waitTick = (ms: number) => (ms >= 1000 ? `${formatCompact(ms / 1000)}s` : `${Math.round(ms)}ms`);

export function JobsByDomainChart({ rows }: { rows: readonly JobsByDomainRow[] }) {
  const animate = useChartAnimation();
  return (
    <ChartFrame label="Jobs and queue wait by domain">
      <BarChart data={[...rows]} margin={{ top: 8, right: 0, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="domain" tick={axisTick} tickLine={false} axisLine={false} interval={0} />
        <YAxis yAxisId="jobs" tick={axisTick} tickLine={false} axisLine={false} width={40} tickFormatter={formatCompact} />
        <YAxis yAxisId="wait" orientation="right" tick={axisTick} tickLine={false} axisLine={false} width={52} tickFormatter={waitTick} />
        <Tooltip
          {...tooltipStyle}
          formatter={(value, name) => (name === "Jobs" ? formatCount(Number(value)) : `${formatCount(Number(value))} ms`)}
        />
        <Legend wrapperStyle={legendStyle} itemSorter={null} />
        <Bar isAnimationActive={animate} yAxisId="jobs" dataKey="jobs" name="Jobs" fill={seriesColor(0)} radius={[4, 4, 0, 0]} />
        <Bar isAnimationActive={animate} yAxisId="wait" dataKey="avg_queue_wait_ms" name="Avg queue wait" fill={seriesColor(1)} radius={[4, 4, 0, 0]} />
        <Bar isAnimationActive={animate} yAxisId="wait" dataKey="p95_queue_wait_ms" name="p95 queue wait" fill={seriesColor(2)} radius={[4, 4, 0, 0]} />
      </BarChart>
    </ChartFrame>
  );
}
