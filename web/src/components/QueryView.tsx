import type { UseQueryResult } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { ErrorState } from "./states";

interface QueryViewProps<T> {
  query: UseQueryResult<T>;
  loading: ReactNode;
  children: (data: T) => ReactNode;
}

/**
 * Loading, error and data for one query. When a background refresh fails the last data stays
 * on screen under a notice, rather than being replaced by the error.
 */
export function QueryView<T>({ query, loading, children }: QueryViewProps<T>) {
  const retry = () => void query.refetch();
  if (query.data !== undefined) {
    return (
      <>
        {query.isError ? <ErrorState error={query.error} onRetry={retry} className="mb-3" /> : null}
        {children(query.data)}
      </>
    );
  }
  if (query.isError) return <ErrorState error={query.error} onRetry={retry} />;
  return <>{loading}</>;
}
