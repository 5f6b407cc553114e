import { keepPreviousData, useMutation, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { apiRequest, isUnauthorized } from "./client";
import { queryKeys } from "./keys";
import type { Budget, BudgetUpsert, Days, EpisodeCost, Me, PodcastEpisodes, Summary, TopUsers } from "./types";

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

export function useSummary(days: Days) {
  return useQuery({
    queryKey: queryKeys.summary(days),
    queryFn: ({ signal }) => apiRequest<Summary>(`/api/admin/cost/summary?days=${days}`, { signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}

export function useTopUsers(days: Days) {
  return useQuery({
    queryKey: queryKeys.topUsers(days),
    queryFn: ({ signal }) =>
      apiRequest<TopUsers>(`/api/admin/cost/users?days=${days}&limit=${TOP_USERS_LIMIT}`, { signal }),
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
