import { MutationCache, QueryCache, QueryClient } from "@tanstack/react-query";
import { ApiError, isUnauthorized } from "./client";
import { queryKeys } from "./keys";

interface Options {
  /** Tests turn retries off so an error state shows at once. */
  retry?: boolean;
}

function shouldRetry(failureCount: number, error: unknown): boolean {
  // A 4xx will not change by asking again; network errors and 5xx might.
  if (error instanceof ApiError && error.status >= 400 && error.status < 500) return false;
  return failureCount < 2;
}

/**
 * The dashboard's QueryClient. Any 401, from any query or mutation, means the session cookie
 * expired or was revoked: `me` becomes null and the app shows the sign-in screen.
 */
export function createQueryClient({ retry = true }: Options = {}): QueryClient {
  const client: QueryClient = new QueryClient({
    queryCache: new QueryCache({
      onError: (error, query) => {
        if (isUnauthorized(error) && query.queryKey[0] !== queryKeys.me[0]) {
          client.setQueryData(queryKeys.me, null);
        }
      },
    }),
    mutationCache: new MutationCache({
      onError: (error) => {
        if (isUnauthorized(error)) client.setQueryData(queryKeys.me, null);
      },
    }),
    defaultOptions: {
      queries: {
        retry: retry ? shouldRetry : false,
        staleTime: 15_000,
      },
      mutations: { retry: false },
    },
  });
  return client;
}
