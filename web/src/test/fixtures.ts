import type { Alerts, Breakdown, Budget, Decisions, EpisodeCost, PodcastEpisodes, Summary, TopUsers, UserDetail } from "@/api/types";
import type { Reply } from "./mockApi";

const DATES = ["2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24", "2026-11-25"];

export const ME = { name: "ops", role: "admin", timezone: "UTC", today: "2026-11-25" };

export function summaryFixture(overrides: Partial<Summary> = {}): Summary {
  return {
    days: 7,
    from: DATES[0] ?? "",
    to: DATES[6] ?? "",
    timezone: "UTC",
    partial_date: DATES[6] ?? "",
    cards: {
      cost_usd: "12.34567800",
      jobs: 1200,
      ai_calls: 340,
      cpu_ms: 5_000_000,
      tokens_in: 900_000,
      tokens_out: 120_000,
      cache_hit_rate: 0.23,
    },
    sparklines: {
      cost_usd: DATES.map((date, i) => ({ date, value: `${i + 1}.2` })),
      jobs: DATES.map((date, i) => ({ date, value: 10 * (i + 1) })),
      ai_calls: DATES.map((date, i) => ({ date, value: 3 * (i + 1) })),
      tokens_in: DATES.map((date, i) => ({ date, value: 1000 * (i + 1) })),
      tokens_out: DATES.map((date, i) => ({ date, value: 200 * (i + 1) })),
    },
    today: {
      cost_usd: "3.25",
      caps: [
        { scope: "global", metric: "cpu_ms", cap: "1000000", used: "250000", fraction: 0.25, reached_at: "2026-11-25T18:00:00+00:00" },
        { scope: "pro", metric: "cost_usd", cap: "50.000000", used: "10.500000", fraction: 0.21, reached_at: null },
      ],
    },
    series: {
      cost_by_tier: DATES.map((date) => ({ date, free: "0.10", pro: "1.00", enterprise: "2.00" })),
      jobs_by_domain: [
        { domain: "audio", jobs: 800, avg_queue_wait_ms: 120.5, p95_queue_wait_ms: 900 },
        { domain: "text", jobs: 400, avg_queue_wait_ms: 40, p95_queue_wait_ms: 300 },
      ],
      tokens: DATES.map((date, i) => ({ date, tokens_in: 1000 * (i + 1), tokens_out: 200 * (i + 1), cache_hit_rate: 0.2 })),
    },
    forecast: {
      month_to_date_cost_usd: "40.00000000",
      month_projected_cost_usd: "47.21000000",
      method: "month to date + 6.5 days x $1.1092/day, the average of the last 7 full days",
      daily_average_usd: "1.10923077",
      days_averaged: 7,
      remaining_days: "6.5000",
    },
    estimated: { events: 4, cost_usd: "0.25", share: 0.01 },
    unpriced: [
      {
        item: "llm:openai/house-model",
        cost_usd: "0.50",
        share: 0.02,
        events: 12,
        reason: "model unknown to the price library: billed at the seed constants",
      },
      {
        item: "gemini_txt:ai_api_call",
        cost_usd: "0",
        share: 0,
        events: 3,
        reason: "unknown service 'gemini_txt' for event type 'ai_api_call'",
      },
    ],
    ...overrides,
  };
}

export function emptySummary(): Summary {
  const base = summaryFixture();
  return {
    ...base,
    cards: { cost_usd: "0", jobs: 0, ai_calls: 0, cpu_ms: 0, tokens_in: 0, tokens_out: 0, cache_hit_rate: 0 },
    today: { cost_usd: "0", caps: [] },
    series: {
      cost_by_tier: DATES.map((date) => ({ date, free: "0", pro: "0", enterprise: "0" })),
      jobs_by_domain: [],
      tokens: DATES.map((date) => ({ date, tokens_in: 0, tokens_out: 0, cache_hit_rate: 0 })),
    },
    forecast: {
      month_to_date_cost_usd: "0",
      month_projected_cost_usd: "0",
      method: "month to date only: no full day of data in the 7 days before today to project the remaining 6.5 days from",
      daily_average_usd: null,
      days_averaged: 0,
      remaining_days: "6.5000",
    },
    estimated: { events: 0, cost_usd: "0", share: 0 },
    unpriced: [],
  };
}

export const USERS: TopUsers = {
  days: 7,
  users: [
    { user_id: "u1", tier: "pro", cost_usd: "1.23", jobs: 10, ai_calls: 3, tokens_in: 1000, tokens_out: 100 },
    { user_id: "u2", tier: "free", cost_usd: "0.045", jobs: 2, ai_calls: 1, tokens_in: 50, tokens_out: 5 },
  ],
};

export const BUDGET: Budget = {
  apply_scope: "global",
  daily_cpu_ms_cap: 1_000_000,
  daily_jobs_cap: null,
  llm_input_tokens_cap: null,
  llm_output_tokens_cap: null,
  daily_cost_usd_cap: "50.00",
  alert_thresholds: ["0.8", "1.0"],
  enabled: true,
  updated_by: "ops",
  updated_at: "2026-11-25T10:00:00+00:00",
};

export const EPISODE: EpisodeCost = {
  entity_type: "episode",
  entity_id: "ep1",
  podcast_id: "pod1",
  total_cost_usd: "0.12",
  cost_by_service: { openai: "0.10", s3: "0.02" },
  cost_by_category: { ai: "0.10", aws: "0.02" },
  usage_metrics: { tokens_in: 100, emails: 3, storage_mb: 5.0 },
  event_count: 7,
  calculated_at: "2026-11-25T10:00:00+00:00",
};

export const PODCAST: PodcastEpisodes = {
  podcast_id: "pod1",
  total_cost_usd: "1.00",
  average_cost_usd: "0.25",
  max_cost_usd: "0.50",
  episodes: [
    { episode_id: "ep1", total_cost_usd: "0.50", event_count: 4 },
    { episode_id: "ep2", total_cost_usd: "0.25", event_count: 2 },
  ],
};

/** Routes for a signed-in admin with data everywhere. */
const BREAKDOWN_TOTAL = { cost_usd: "12.345678", tokens_in: 900_000, tokens_out: 120_000, calls: 340 };

export const BREAKDOWN: Breakdown = {
  by: "model",
  from: DATES[0] ?? "",
  to: DATES[6] ?? "",
  days: 7,
  timezone: "UTC",
  partial_date: DATES[6] ?? "",
  previous: { from: "2026-11-12", to: "2026-11-18" },
  total: BREAKDOWN_TOTAL,
  previous_total: BREAKDOWN_TOTAL,
  rows: [
    { key: "openai/gpt-4o", label: "openai/gpt-4o", ...BREAKDOWN_TOTAL, share: 1, previous_cost_usd: "10", change: 0.2345678 },
  ],
};

export function signedInRoutes(): Record<string, Reply> {
  return {
    "GET /api/admin/me": { status: 200, body: ME },
    "GET /api/admin/cost/summary?days=7": { status: 200, body: summaryFixture() },
    "GET /api/admin/cost/summary?days=30": { status: 200, body: summaryFixture({ days: 30, cards: { ...summaryFixture().cards, cost_usd: "99.5" } }) },
    "GET /api/admin/cost/users": { status: 200, body: USERS },
    "GET /api/admin/cost/budgets": { status: 200, body: { budgets: [BUDGET] } },
    "GET /api/admin/cost/breakdown": { status: 200, body: BREAKDOWN },
    "GET /api/admin/cost/decisions": { status: 200, body: DECISIONS },
    "GET /api/admin/cost/alerts": { status: 200, body: ALERTS },
  };
}

export const DECISIONS: Decisions = {
  from: DATES[0] ?? "",
  to: DATES[6] ?? "",
  days: 7,
  timezone: "UTC",
  partial_date: DATES[6] ?? "",
  actions: ["ALLOW", "DOWNGRADE", "DEFER", "DENY"],
  totals: [
    { tier: "free", total: 1310, ALLOW: 1200, DOWNGRADE: 0, DEFER: 100, DENY: 10 },
    { tier: "pro", total: 505, ALLOW: 500, DOWNGRADE: 5, DEFER: 0, DENY: 0 },
  ],
  series: DATES.map((date, i) => ({ date, ALLOW: 100 + i, DOWNGRADE: i % 2, DEFER: i, DENY: 0 })),
};

export const ALERTS: Alerts = {
  from: DATES[0] ?? "",
  to: DATES[6] ?? "",
  counts: { sent: 3, failed: 1, pending: 2, resolved: 1 },
  alerts: [
    {
      id: 7,
      day: "2026-11-25",
      scope: "pro",
      metric: "cost_usd",
      threshold: "0.8",
      kind: "crossed",
      used: "40.123456",
      cap: "50.000000",
      status: "pending",
      created_at: "2026-11-25T10:00:00+00:00",
      delivered_at: null,
      attempts: 2,
      last_error: "webhook answered 503",
    },
    {
      id: 6,
      day: "2026-11-24",
      scope: "global",
      metric: "jobs",
      threshold: "1.0",
      kind: "resolved",
      used: "4200",
      cap: "5000",
      status: "sent",
      created_at: "2026-11-24T09:00:00+00:00",
      delivered_at: "2026-11-24T09:00:02+00:00",
      attempts: 1,
      last_error: null,
    },
  ],
};

const USER_TOTALS = { cost_usd: "1.234567", jobs: 10, ai_calls: 3, tokens_in: 1000, tokens_out: 100 };

export const USER_DETAIL: UserDetail = {
  user_id: "u1",
  tier: "pro",
  from: DATES[0] ?? "",
  to: DATES[6] ?? "",
  days: 7,
  timezone: "UTC",
  partial_date: DATES[6] ?? "",
  totals: USER_TOTALS,
  previous_totals: { ...USER_TOTALS, cost_usd: "1.00" },
  change: { cost_usd: 0.234567 },
  days_series: DATES.map((date, i) => ({ date, cost_usd: i === 0 ? "0.004" : "0.2", jobs: 1, ai_calls: i % 2, tokens_in: 100, tokens_out: 10 })),
  by_model: [{ key: "openai/gpt-4o", cost_usd: "1.10", tokens_in: 900, tokens_out: 90, calls: 3 }],
  by_service: [{ key: "s3_put", cost_usd: "0.000123", events: 4 }],
  recent_events: [
    { kind: "llm", event_id: "e1", at: "2026-11-25T10:00:00+00:00", name: "openai/gpt-4o", cost_usd: "0.05", detail: "1,234 in / 56 out tokens", success: true, price_note: null },
    { kind: "job", event_id: "e2", at: "2026-11-25T09:00:00+00:00", name: "transcribe", cost_usd: null, detail: "1.2 s", success: false, price_note: "not priced yet" },
  ],
  caps: [{ scope: "pro", metric: "cost_usd", cap: "50", used: "10", fraction: 0.2 }],
  decisions: [{ date: "2026-11-25", tier: "pro", action: "DEFER", decisions: 4, last_reason: "pro cpu_ms cap", last_at: "2026-11-25T10:00:00+00:00" }],
};
