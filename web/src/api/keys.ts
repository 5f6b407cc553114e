export const queryKeys = {
  me: ["me"] as const,
  summary: (range: string) => ["summary", range] as const,
  topUsers: (range: string) => ["top-users", range] as const,
  budgets: ["budgets"] as const,
  breakdown: (by: string, range: string) => ["breakdown", by, range] as const,
  decisions: (range: string, tier: string) => ["decisions", range, tier] as const,
  alerts: (range: string, status: string) => ["alerts", range, status] as const,
  user: (id: string, range: string) => ["user", id, range] as const,
  episode: (id: string) => ["episode", id] as const,
  podcast: (id: string) => ["podcast", id] as const,
};
