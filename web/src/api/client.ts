// The one place that talks HTTP. The session is an HttpOnly cookie set by the gateway, so every
// request goes same-origin with credentials and the dashboard never sees or stores a token.

export class ApiError extends Error {
  readonly status: number;
  /** The request field the gateway blamed for a 400, e.g. "daily_cpu_ms_cap". */
  readonly field: string | undefined;

  constructor(status: number, message: string, field?: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field;
  }
}

export function isUnauthorized(error: unknown): boolean {
  return error instanceof ApiError && error.status === 401;
}

type Method = "GET" | "POST" | "DELETE";

interface RequestOptions {
  method?: Method;
  body?: unknown;
  signal?: AbortSignal;
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function stringField(payload: unknown, key: string): string | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const value = (payload as Record<string, unknown>)[key];
  return typeof value === "string" ? value : undefined;
}

export async function apiRequest<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const { method = "GET", body, signal } = options;
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (cause) {
    if (cause instanceof DOMException && cause.name === "AbortError") throw cause;
    throw new ApiError(0, "Could not reach the gateway. Check the connection and try again.");
  }
  const payload = await readJson(response);
  if (!response.ok) {
    const message = stringField(payload, "error") ?? `The gateway answered ${response.status}.`;
    throw new ApiError(response.status, message, stringField(payload, "field"));
  }
  // The gateway's contract (api/types.ts) is trusted here, at the single boundary.
  return payload as T;
}
