import type { Budget, BudgetUpsert } from "@/api/types";
import { formatCount, formatPercent, formatUsd, formatUsdExact } from "@/lib/format";

type Caps = Pick<
  Budget,
  "daily_cpu_ms_cap" | "daily_jobs_cap" | "llm_input_tokens_cap" | "llm_output_tokens_cap" | "daily_cost_usd_cap"
>;

/** Each cap of a budget as a label and a display value ("no cap" when unset). */
/** `exact` is the title of a money value (the one money rule: rounded text, exact title). */
export function describeCaps(caps: Caps): { label: string; value: string; exact?: string }[] {
  const count = (value: number | null) => (value === null ? "no cap" : formatCount(value));
  return [
    { label: "Daily CPU ms cap", value: count(caps.daily_cpu_ms_cap) },
    { label: "Daily jobs cap", value: count(caps.daily_jobs_cap) },
    { label: "LLM input tokens cap", value: count(caps.llm_input_tokens_cap) },
    { label: "LLM output tokens cap", value: count(caps.llm_output_tokens_cap) },
    caps.daily_cost_usd_cap === null
      ? { label: "Daily cost cap", value: "no cap" }
      : { label: "Daily cost cap", value: formatUsd(caps.daily_cost_usd_cap), exact: formatUsdExact(caps.daily_cost_usd_cap) },
  ];
}

/** "80%, 100%": thresholds are decimal strings, a fraction of the cap. */
export function describeThresholds(thresholds: readonly string[]): string {
  return thresholds.map((value) => formatPercent(Number(value))).join(", ");
}

export function describeScope(scope: BudgetUpsert["apply_scope"]): string {
  if (scope === "global") return "everyone (global)";
  if (scope.startsWith("user:")) return `user ${scope.slice("user:".length)}`;
  return `the ${scope} tier`;
}
