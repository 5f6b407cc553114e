import { useSummary } from "@/api/hooks";
import type { SeriesPoint, Summary } from "@/api/types";
import { QueryView } from "@/components/QueryView";
import { Skeleton } from "@/components/ui/skeleton";
import { Sparkline } from "@/features/charts/Sparkline";
import { formatCompact, formatCount, formatDay, formatDurationMs, formatPercent, formatUsd, formatUsdExact } from "@/lib/format";
import { cn } from "@/lib/utils";
import { ChangeBadge } from "./ChangeBadge";

type ChangeKey = keyof NonNullable<Summary["change"]>;

interface CardSpec {
  id: string;
  label: string;
  value: (summary: Summary) => string;
  /** The exact figure, when `value` is rounded for space. */
  exact?: (summary: Summary) => string;
  hint?: (summary: Summary) => string;
  trend: (summary: Summary) => readonly (number | string)[];
  /** The summary's `change` key, for the comparison with the previous period. */
  change?: ChangeKey;
}

const points = (series: SeriesPoint[] | undefined) => (series ?? []).map((point) => point.value);

/** Counts up to 99,999 in full; beyond that "1.2M", with the full figure as the tooltip. */
const shortCount = (value: number) => (Math.abs(value) < 100_000 ? formatCount(value) : formatCompact(value));

const CARDS: readonly CardSpec[] = [
  {
    id: "cost",
    change: "cost_usd",
    label: "Cost",
    value: (s) => formatUsd(s.cards.cost_usd),
    exact: (s) => formatUsdExact(s.cards.cost_usd),
    hint: (s) => `${formatDay(s.from)} – ${formatDay(s.to)}`,
    trend: (s) => points(s.sparklines.cost_usd),
  },
  {
    id: "jobs",
    change: "jobs",
    label: "Jobs",
    value: (s) => shortCount(s.cards.jobs),
    exact: (s) => formatCount(s.cards.jobs),
    trend: (s) => points(s.sparklines.jobs),
  },
  {
    id: "ai-calls",
    change: "ai_calls",
    label: "AI calls",
    value: (s) => shortCount(s.cards.ai_calls),
    exact: (s) => formatCount(s.cards.ai_calls),
    trend: (s) => points(s.sparklines.ai_calls),
  },
  {
    id: "cpu-ms",
    label: "CPU ms",
    value: (s) => shortCount(s.cards.cpu_ms),
    exact: (s) => formatCount(s.cards.cpu_ms),
    hint: (s) => `${formatDurationMs(s.cards.cpu_ms)} of CPU`,
    trend: (s) => points(s.sparklines.cpu_ms),
  },
  {
    id: "tokens-in",
    change: "tokens_in",
    label: "Tokens in",
    value: (s) => shortCount(s.cards.tokens_in),
    exact: (s) => formatCount(s.cards.tokens_in),
    trend: (s) => points(s.sparklines.tokens_in),
  },
  {
    id: "tokens-out",
    change: "tokens_out",
    label: "Tokens out",
    value: (s) => shortCount(s.cards.tokens_out),
    exact: (s) => formatCount(s.cards.tokens_out),
    trend: (s) => points(s.sparklines.tokens_out),
  },
  {
    id: "cache-hit-rate",
    label: "Cache hit-rate",
    value: (s) => formatPercent(s.cards.cache_hit_rate),
    hint: () => "of LLM calls",
    trend: (s) => s.series.tokens.map((row) => row.cache_hit_rate),
  },
];

const GRID = "grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-4 xl:grid-cols-7";

function StatCard({ spec, summary }: { spec: CardSpec; summary: Summary }) {
  return (
    <div data-testid={`card-${spec.id}`} className="flex min-w-0 flex-col gap-1 rounded-xl border bg-card p-3 shadow-sm">
      <p className="truncate text-xs text-muted-foreground">{spec.label}</p>
      <p
        data-testid={`card-${spec.id}-value`}
        title={spec.exact?.(summary)}
        className="text-xl leading-tight font-semibold tabular-nums [overflow-wrap:anywhere]"
      >
        {spec.value(summary)}
      </p>
      <p className="min-h-4 truncate text-xs text-muted-foreground">{spec.hint?.(summary) ?? ""}</p>
      {spec.change && summary.change && summary.previous ? (
        <ChangeBadge change={summary.change[spec.change]} previous={summary.previous} testId={`card-${spec.id}-change`} />
      ) : null}
      <Sparkline values={spec.trend(summary)} label={`${spec.label} per day`} partialLast={summary.partial_date === summary.to} />
    </div>
  );
}

function CardsLoading() {
  return (
    <>
      {CARDS.map((spec) => (
        <div key={spec.id} role="status" aria-label={`Loading ${spec.label}`} className="grid gap-2 rounded-xl border p-3">
          <Skeleton className="h-3 w-16" />
          <Skeleton className="h-6 w-24" />
          <Skeleton className="h-8 w-full" />
        </div>
      ))}
    </>
  );
}

export function SummaryCards({ range }: { range: string }) {
  const query = useSummary(range);
  return (
    <section aria-label="Totals" data-testid="summary-cards" className={cn(GRID, query.isPlaceholderData && "opacity-60")}>
      <QueryView query={query} loading={<CardsLoading />}>
        {(summary) => CARDS.map((spec) => <StatCard key={spec.id} spec={spec} summary={summary} />)}
      </QueryView>
    </section>
  );
}
