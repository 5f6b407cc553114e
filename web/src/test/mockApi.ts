import { vi } from "vitest";

export interface Reply {
  status: number;
  body?: unknown;
}

export interface Call {
  method: string;
  path: string;
  search: string;
  body: unknown;
  credentials: RequestCredentials | undefined;
}

type Handler = Reply | ((call: Call) => Reply);

/**
 * Replaces fetch with a table of routes, "METHOD /path" or "METHOD /path?query" (the exact
 * query wins). Unknown routes answer 404 so a missing mock shows up as an error state.
 */
export function mockApi(initial: Record<string, Handler>) {
  const routes = new Map<string, Handler>(Object.entries(initial));
  const calls: Call[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input), window.location.origin);
    const method = init?.method ?? "GET";
    const call: Call = {
      method,
      path: url.pathname,
      search: url.search,
      body: typeof init?.body === "string" ? (JSON.parse(init.body) as unknown) : undefined,
      credentials: init?.credentials,
    };
    calls.push(call);
    const handler = routes.get(`${method} ${url.pathname}${url.search}`) ?? routes.get(`${method} ${url.pathname}`);
    const reply: Reply = handler === undefined ? { status: 404, body: { error: "not mocked" } } : typeof handler === "function" ? handler(call) : handler;
    return new Response(reply.body === undefined ? null : JSON.stringify(reply.body), {
      status: reply.status,
      headers: { "Content-Type": "application/json" },
    });
  });
  vi.stubGlobal("fetch", fetchMock);
  return {
    calls,
    fetchMock,
    route(key: string, handler: Handler) {
      routes.set(key, handler);
    },
    callsTo(method: string, path: string) {
      return calls.filter((call) => call.method === method && call.path === path);
    },
  };
}

export const ok = (body: unknown): Reply => ({ status: 200, body });
export const fail = (status: number, error: string, field?: string): Reply => ({
  status,
  body: field ? { error, field } : { error },
});
