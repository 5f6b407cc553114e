import { keepPreviousData, useMutation, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { apiRequest, isUnauthorized } from "./client";
import { queryKeys } from "./keys";
import type {
  Alerts,
  AlertStatus,
  Breakdown,
  BreakdownBy,
  Budget,
  BudgetUpsert,
  Decisions,
  EpisodeCost,
  ExportTable,
  Me,
  PodcastEpisodes,
  Summary,
  TopUsers,
  UserDetail,
} from "./types";

/** Every section refreshes on its own; the gateway's rollups move about this often. */
export const REFRESH_MS = 30_000;
export const TOP_USERS_LIMIT = 20;

const segment = encodeURIComponent;

function forgetEverythingButMe(client: QueryClient): void {
  client.removeQueries({ predicate: (query) => query.queryKey[0] !== queryKeys.me[0] });
}

/** The signed-in admin, or null when there is no valid session (401). */
export function useMe() {
  return useQuery({
    queryKey: queryKeys.me,
    queryFn: async ({ signal }) => {
      try {
        return await apiRequest<Me>("/api/admin/me", { signal });
      } catch (error) {
        if (isUnauthorized(error)) return null;
        throw error;
      }
    },
    staleTime: Infinity,
  });
}

export function useSignIn() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (token: string) => apiRequest<Me>("/api/admin/session", { method: "POST", body: { token } }),
    onSuccess: (me) => {
      forgetEverythingButMe(client);
      client.setQueryData(queryKeys.me, me);
    },
  });
}

export function useSignOut() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => apiRequest<unknown>("/api/admin/session", { method: "DELETE" }),
    onSettled: () => {
      forgetEverythingButMe(client);
      client.setQueryData(queryKeys.me, null);
    },
  });
}

export function useSummary(range: string) {
  return useQuery({
    queryKey: queryKeys.summary(range),
    queryFn: ({ signal }) => apiRequest<Summary>(withParams("/api/admin/cost/summary", range), { signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}

export function useTopUsers(range: string) {
  return useQuery({
    queryKey: queryKeys.topUsers(range),
    queryFn: ({ signal }) =>
      apiRequest<TopUsers>(withParams("/api/admin/cost/users", range, { limit: String(TOP_USERS_LIMIT) }), { signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}

export function useBudgets() {
  return useQuery({
    queryKey: queryKeys.budgets,
    queryFn: ({ signal }) => apiRequest<{ budgets: Budget[] }>("/api/admin/cost/budgets", { signal }),
    refetchInterval: REFRESH_MS,
  });
}

export function useSaveBudget() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: BudgetUpsert) =>
      apiRequest<{ budget: Budget }>("/api/admin/cost/budgets", { method: "POST", body }),
    onSuccess: async () => {
      // Caps shown under "today" come from the budgets, so the summary is stale too.
      await Promise.all([
        client.invalidateQueries({ queryKey: queryKeys.budgets }),
        client.invalidateQueries({ queryKey: ["summary"] }),
      ]);
    },
  });
}

export function useEpisode(episodeId: string | null) {
  return useQuery({
    queryKey: queryKeys.episode(episodeId ?? ""),
    queryFn: ({ signal }) => apiRequest<EpisodeCost>(`/api/admin/cost/episodes/${segment(episodeId ?? "")}`, { signal }),
    enabled: episodeId !== null,
    refetchInterval: REFRESH_MS,
  });
}

export function usePodcastEpisodes(podcastId: string | null) {
  return useQuery({
    queryKey: queryKeys.podcast(podcastId ?? ""),
    queryFn: ({ signal }) =>
      apiRequest<PodcastEpisodes>(`/api/admin/cost/podcasts/${segment(podcastId ?? "")}/episodes`, { signal }),
    enabled: podcastId !== null,
    refetchInterval: REFRESH_MS,
  });
}

export function useRecalculateEpisode() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (episodeId: string) =>
      apiRequest<EpisodeCost>(`/api/admin/cost/episodes/${segment(episodeId)}/recalculate`, { method: "POST" }),
    onSuccess: async (episode) => {
      client.setQueryData(queryKeys.episode(episode.entity_id), episode);
      if (episode.podcast_id) await client.invalidateQueries({ queryKey: queryKeys.podcast(episode.podcast_id) });
    },
  });
}

// Issue 17: every analytics route takes the range's query ("days=7" or "from=...&to=...", lib/range).

function withParams(path: string, range: string, extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams(range);
  for (const [key, value] of Object.entries(extra)) if (value) params.set(key, value);
  return `${path}?${params.toString()}`;
}

/** The CSV of a table, for the same range and filters (a plain link: the session is a cookie). */
export function exportCsvUrl(table: ExportTable, range: string, extra: Record<string, string | undefined> = {}): string {
  return withParams("/api/admin/cost/export.csv", range, { table, ...extra });
}

export function useBreakdown(by: BreakdownBy, range: string) {
  return useQuery({
    queryKey: queryKeys.breakdown(by, range),
    queryFn: ({ signal }) => apiRequest<Breakdown>(withParams("/api/admin/cost/breakdown", range, { by }), { signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}

export function useDecisions(range: string, tier = "") {
  return useQuery({
    queryKey: queryKeys.decisions(range, tier),
    queryFn: ({ signal }) => apiRequest<Decisions>(withParams("/api/admin/cost/decisions", range, { tier }), { signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}

export function useAlerts(range: string, status: AlertStatus | "" = "") {
  return useQuery({
    queryKey: queryKeys.alerts(range, status),
    queryFn: ({ signal }) => apiRequest<Alerts>(withParams("/api/admin/cost/alerts", range, { status }), { signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}

export function useUserDetail(userId: string, range: string) {
  return useQuery({
    queryKey: queryKeys.user(userId, range),
    queryFn: ({ signal }) => apiRequest<UserDetail>(withParams(`/api/admin/cost/users/${segment(userId)}`, range), { signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}
