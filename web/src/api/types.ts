// Shapes of the gateway's admin API (services/gateway). Money is always a decimal string.

export type Money = string;

export interface Me {
  name: string;
  role: string;
  /** The reporting time zone and today's date in it (issue 17; absent from older gateways). */
  timezone?: string;
  today?: string;
}

export interface SeriesPoint {
  date: string;
  value: number | Money;
}

export type SparklineKey = "cost_usd" | "jobs" | "ai_calls" | "cpu_ms" | "tokens_in" | "tokens_out";

export interface SummaryCards {
  cost_usd: Money;
  jobs: number;
  ai_calls: number;
  cpu_ms: number;
  tokens_in: number;
  tokens_out: number;
  cache_hit_rate: number;
}

export type CapMetric = "jobs" | "cpu_ms" | "llm_input_tokens" | "llm_output_tokens" | "cost_usd";

export interface CapToday {
  scope: string;
  metric: CapMetric;
  cap: string;
  used: string;
  fraction: number;
  /** When today's pace reaches the cap, if that is still today; otherwise null. */
  reached_at: string | null;
}

/** One day's cost per tier: `{date, free: "0.10", pro: "1.00", ...}`. */
export type CostByTierRow = { date: string } & Record<string, Money>;

export interface JobsByDomainRow {
  domain: string;
  jobs: number;
  avg_queue_wait_ms: number | null;
  p95_queue_wait_ms: number | null;
}

export interface TokensRow {
  date: string;
  tokens_in: number;
  tokens_out: number;
  cache_hit_rate: number;
}

export interface UnpricedItem {
  item: string;
  cost_usd: Money;
  share: number;
  events: number;
  /** Why it is not priced ("" for days rolled up before reasons were recorded). */
  reason?: string;
}

/** The month's projection, and how it was made. */
export interface Forecast {
  month_to_date_cost_usd: Money;
  /** Month to date + remaining_days x daily_average_usd (the month to date alone without one). */
  month_projected_cost_usd: Money;
  /** The method in words: "month to date + 10.25 days x $1.0300/day, the average of the last 7 full days". */
  method: string;
  /** The average of the full days among the 7 before today; null when there is none. */
  daily_average_usd: Money | null;
  days_averaged: number;
  /** What is left of today (a fraction) and the days after it, a decimal string. */
  remaining_days: string;
}

export interface Summary extends SummaryComparison {
  days: number;
  from: string;
  to: string;
  timezone: string;
  /** Today, when the range includes it: its points are today's so far, a partial day (else null). */
  partial_date: string | null;
  cards: SummaryCards;
  sparklines: Partial<Record<SparklineKey, SeriesPoint[]>>;
  /** Today's cost from the live counters (the figure caps are enforced on), and each cap. */
  today: { cost_usd: Money; caps: CapToday[] };
  series: {
    cost_by_tier: CostByTierRow[];
    jobs_by_domain: JobsByDomainRow[];
    tokens: TokensRow[];
  };
  forecast: Forecast;
  unpriced: UnpricedItem[];
  /** LLM calls whose usage never arrived, priced at an estimate of their tokens. */
  estimated: { events: number; cost_usd: Money; share: number };
}

export interface TopUser {
  user_id: string;
  tier: string;
  cost_usd: Money;
  jobs: number;
  ai_calls: number;
  tokens_in: number;
  tokens_out: number;
}

export interface TopUsers {
  days: number;
  users: TopUser[];
}

export interface Budget {
  apply_scope: string;
  daily_cpu_ms_cap: number | null;
  daily_jobs_cap: number | null;
  llm_input_tokens_cap: number | null;
  llm_output_tokens_cap: number | null;
  daily_cost_usd_cap: Money | null;
  alert_thresholds: string[];
  enabled: boolean;
  updated_by: string;
  updated_at: string;
}

export interface BudgetUpsert {
  apply_scope: string;
  daily_cpu_ms_cap: number | null;
  daily_jobs_cap: number | null;
  llm_input_tokens_cap: number | null;
  llm_output_tokens_cap: number | null;
  daily_cost_usd_cap: Money | null;
  alert_thresholds: string[];
  enabled: boolean;
}

export interface EpisodeCost {
  entity_type: string;
  entity_id: string;
  podcast_id: string | null;
  total_cost_usd: Money;
  cost_by_service: Record<string, Money>;
  cost_by_category: Record<string, Money>;
  usage_metrics: Record<string, number | string>;
  event_count: number;
  calculated_at: string;
}

export interface PodcastEpisode {
  episode_id: string;
  total_cost_usd: Money;
  event_count: number;
}

export interface PodcastEpisodes {
  podcast_id: string;
  episode_count?: number;
  total_cost_usd: Money;
  average_cost_usd: Money;
  max_cost_usd: Money;
  episodes: PodcastEpisode[];
}

// Issue 17's routes (the contract in the gateway's analytics module).

export interface Totals {
  cost_usd: Money;
  tokens_in: number;
  tokens_out: number;
  calls: number;
}

export type BreakdownBy = "model" | "service" | "domain" | "tier";

export interface BreakdownRow extends Totals {
  /** null for the rest: cost not attributed to any key. */
  key: string | null;
  label: string;
  share: number;
  previous_cost_usd: Money;
  change: number | null;
}

export interface Breakdown {
  by: BreakdownBy;
  from: string;
  to: string;
  days: number;
  timezone: string;
  partial_date: string | null;
  previous: { from: string; to: string };
  total: Totals;
  previous_total: Totals;
  rows: BreakdownRow[];
}

export type ThrottleAction = "ALLOW" | "DOWNGRADE" | "DEFER" | "DENY";

export type DecisionCounts = Record<ThrottleAction, number>;

export interface Decisions {
  from: string;
  to: string;
  days: number;
  timezone: string;
  partial_date: string | null;
  actions: ThrottleAction[];
  totals: ({ tier: string; total: number } & DecisionCounts)[];
  series: ({ date: string } & DecisionCounts)[];
}

export type AlertStatus = "sent" | "failed" | "pending";

export interface BudgetAlert {
  id: number;
  day: string;
  scope: string;
  metric: CapMetric;
  threshold: string;
  kind: "crossed" | "resolved";
  used: string;
  cap: string;
  status: AlertStatus;
  created_at: string;
  delivered_at: string | null;
  attempts: number;
  last_error: string | null;
}

export interface Alerts {
  from: string;
  to: string;
  counts: { sent: number; failed: number; pending: number; resolved: number };
  alerts: BudgetAlert[];
}

export interface UserTotals {
  cost_usd: Money;
  jobs: number;
  ai_calls: number;
  tokens_in: number;
  tokens_out: number;
}

export interface UserDetail {
  user_id: string;
  tier: string;
  from: string;
  to: string;
  days: number;
  timezone: string;
  partial_date: string | null;
  totals: UserTotals;
  previous_totals: UserTotals;
  change: { cost_usd: number | null };
  days_series: ({ date: string } & UserTotals)[];
  by_model: { key: string; cost_usd: Money; tokens_in: number; tokens_out: number; calls: number }[];
  by_service: { key: string; cost_usd: Money; events: number }[];
  recent_events: {
    kind: "job" | "llm" | "cost";
    event_id: string;
    at: string;
    name: string;
    cost_usd: Money | null;
    detail: string;
    success: boolean;
    /** Why the price is $0, missing, estimated or a fallback; null when it is the library's own. */
    price_note: string | null;
  }[];
  caps: { scope: string; metric: CapMetric; cap: string; used: string; fraction: number }[];
  decisions: { date: string; tier: string; action: ThrottleAction; decisions: number; last_reason: string; last_at: string }[];
}

/** The summary's comparison with the previous period (issue 17; absent from older gateways). */
export interface SummaryComparison {
  previous?: { from: string; to: string; cards: Omit<SummaryCards, "cache_hit_rate"> };
  change?: Record<"cost_usd" | "jobs" | "ai_calls" | "tokens_in" | "tokens_out", number | null>;
}

export type ExportTable =
  | "top_users"
  | "cost_by_day"
  | "breakdown"
  | "decisions"
  | "alerts"
  | "unpriced"
  | "user_days"
  | "user_models"
  | "user_services"
  | "user_events";
