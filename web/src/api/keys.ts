import type { Days } from "./types";

export const queryKeys = {
  me: ["me"] as const,
  summary: (days: Days) => ["summary", days] as const,
  topUsers: (days: Days) => ["top-users", days] as const,
  budgets: ["budgets"] as const,
  episode: (id: string) => ["episode", id] as const,
  podcast: (id: string) => ["podcast", id] as const,
};
