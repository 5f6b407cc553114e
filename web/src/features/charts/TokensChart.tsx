import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from "recharts";
import type { TokensRow } from "@/api/types";
import { formatCompact, formatCount, formatDay, formatPercent } from "@/lib/format";
import { ChartFrame } from "./ChartFrame";
import { axisTick, legendStyle, seriesColor, tooltipStyle } from "./chartTheme";
import { partialArea, partialSpan } from "./PartialDay";
import { useChartAnimation } from "@/lib/motion";

export function hasTokens(rows: readonly TokensRow[]): boolean {
  return rows.some((row) => row.tokens_in > 0 || row.tokens_out > 0);
}

export function TokensChart({ rows, partialDate }: { rows: readonly TokensRow[]; partialDate?: string }) {
  const animate = useChartAnimation();
  const data = rows.map((row) => ({ ...row, day: formatDay(row.date) }));
  const partial = partialSpan(
    rows.map((row) => row.date),
    partialDate,
  );
  return (
    <ChartFrame label="LLM tokens per day and cache hit-rate">
      <LineChart data={data} margin={{ top: 8, right: 0, bottom: 0, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="day" tick={axisTick} tickLine={false} axisLine={false} minTickGap={16} />
        <YAxis yAxisId="tokens" tick={axisTick} tickLine={false} axisLine={false} width={44} tickFormatter={formatCompact} />
        <YAxis
          yAxisId="rate"
          orientation="right"
          domain={[0, 1]}
          tick={axisTick}
          tickLine={false}
          axisLine={false}
          width={44}
          tickFormatter={formatPercent}
        />
        <Tooltip
          {...tooltipStyle}
          formatter={(value, name) => (name === "Cache hit-rate" ? formatPercent(Number(value)) : formatCount(Number(value)))}
        />
        <Legend wrapperStyle={legendStyle} itemSorter={null} />
        <Line isAnimationActive={animate} yAxisId="tokens" type="monotone" dataKey="tokens_in" name="Tokens in" stroke={seriesColor(0)} strokeWidth={2} dot={false} />
        <Line isAnimationActive={animate} yAxisId="tokens" type="monotone" dataKey="tokens_out" name="Tokens out" stroke={seriesColor(1)} strokeWidth={2} dot={false} />
        <Line isAnimationActive={animate}
          yAxisId="rate"
          type="monotone"
          dataKey="cache_hit_rate"
          name="Cache hit-rate"
          stroke={seriesColor(3)}
          strokeWidth={2}
          strokeDasharray="4 3"
          dot={false}
        />
        {partialArea(partial, "tokens")}
      </LineChart>
    </ChartFrame>
  );
}
