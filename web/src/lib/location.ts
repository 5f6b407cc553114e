// The page's state lives in its URL (?days=, ?from=&to=, ?user=, ?by=): a reload, a shared link
// or a new tab shows the same thing, and back/forward walk through it.
import { useSyncExternalStore, type MouseEvent } from "react";

const NAVIGATE = "costguard:navigate";

function subscribe(onChange: () => void): () => void {
  window.addEventListener("popstate", onChange);
  window.addEventListener(NAVIGATE, onChange);
  return () => {
    window.removeEventListener("popstate", onChange);
    window.removeEventListener(NAVIGATE, onChange);
  };
}

const currentSearch = () => window.location.search;

/** The URL's search ("?days=30&user=u1"), re-read on back/forward and on {@link navigate}. */
export function useSearch(): string {
  return useSyncExternalStore(subscribe, currentSearch, currentSearch);
}

/** Goes to `search` on this page: a history entry (or a replaced one), and every useSearch sees it. */
export function navigate(search: string, { replace = false }: { replace?: boolean } = {}): void {
  const url = `${window.location.pathname}${search}${window.location.hash}`;
  if (replace) window.history.replaceState(window.history.state, "", url);
  else window.history.pushState(window.history.state, "", url);
  window.dispatchEvent(new Event(NAVIGATE));
}

/** `search` with `changes` applied (undefined or "" removes a parameter), as "?a=1" or "". */
export function withSearch(search: string, changes: Record<string, string | undefined>): string {
  const params = new URLSearchParams(search);
  for (const [key, value] of Object.entries(changes)) {
    if (value) params.set(key, value);
    else params.delete(key);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/**
 * onClick for a real <a href="?..."> within the page: a plain click navigates without a reload;
 * a click with a modifier (new tab, new window) or another button is left to the browser.
 */
export function followInPage(search: string) {
  return (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(search);
    window.scrollTo({ top: 0 });
  };
}
