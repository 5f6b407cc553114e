import type { Budget, BudgetUpsert } from "@/api/types";
import { formatCount, formatPercent, formatUsd } from "@/lib/format";

type Caps = Pick<
  Budget,
  "cpu_ms_per_day" | "jobs_per_day" | "llm_input_tokens_per_day" | "llm_output_tokens_per_day" | "cost_usd_per_day"
>;

/** Each cap of a budget as a label and a display value ("no cap" when unset). */
export function describeCaps(caps: Caps): { label: string; value: string }[] {
  const count = (value: number | null) => (value === null ? "no cap" : formatCount(value));
  return [
    { label: "CPU ms / day", value: count(caps.cpu_ms_per_day) },
    { label: "Jobs / day", value: count(caps.jobs_per_day) },
    { label: "LLM input tokens / day", value: count(caps.llm_input_tokens_per_day) },
    { label: "LLM output tokens / day", value: count(caps.llm_output_tokens_per_day) },
    { label: "Cost / day", value: caps.cost_usd_per_day === null ? "no cap" : formatUsd(caps.cost_usd_per_day) },
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
