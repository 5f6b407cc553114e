// The budget form's values, client-side validation and the request body. The rules mirror the
// gateway's (services/gateway/.../api_budgets.py and params.py) so most mistakes never reach it;
// whatever still fails there comes back as a 400 naming the field and is shown at that field.
import type { Budget, BudgetUpsert } from "@/api/types";

export const COUNT_FIELDS = [
  "daily_cpu_ms_cap",
  "daily_jobs_cap",
  "llm_input_tokens_cap",
  "llm_output_tokens_cap",
] as const;

export type CountField = (typeof COUNT_FIELDS)[number];
export type BudgetField = "apply_scope" | CountField | "daily_cost_usd_cap" | "alert_thresholds" | "enabled";

export interface BudgetFormValues {
  apply_scope: string;
  daily_cpu_ms_cap: string;
  daily_jobs_cap: string;
  llm_input_tokens_cap: string;
  llm_output_tokens_cap: string;
  daily_cost_usd_cap: string;
  /** Comma-separated fractions of the cap, e.g. "0.8, 1.0". */
  alert_thresholds: string;
  enabled: boolean;
}

export type BudgetErrors = Partial<Record<BudgetField, string>>;

export type BudgetValidation = { ok: true; body: BudgetUpsert } | { ok: false; errors: BudgetErrors };

export const BUDGET_FIELDS: readonly BudgetField[] = [
  "apply_scope",
  ...COUNT_FIELDS,
  "daily_cost_usd_cap",
  "alert_thresholds",
  "enabled",
];

const MAX_COUNT = 10 ** 15;
const USER_SCOPE = /^user:[A-Za-z0-9_.@-]{1,64}$/;
const TIER_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

export const EMPTY_BUDGET: BudgetFormValues = {
  apply_scope: "global",
  daily_cpu_ms_cap: "",
  daily_jobs_cap: "",
  llm_input_tokens_cap: "",
  llm_output_tokens_cap: "",
  daily_cost_usd_cap: "",
  alert_thresholds: "0.8, 1.0",
  enabled: true,
};

export function isBudgetField(name: string | undefined): name is BudgetField {
  return name !== undefined && (BUDGET_FIELDS as readonly string[]).includes(name);
}

export function valuesFromBudget(budget: Budget): BudgetFormValues {
  const text = (value: number | string | null) => (value === null ? "" : String(value));
  return {
    apply_scope: budget.apply_scope,
    daily_cpu_ms_cap: text(budget.daily_cpu_ms_cap),
    daily_jobs_cap: text(budget.daily_jobs_cap),
    llm_input_tokens_cap: text(budget.llm_input_tokens_cap),
    llm_output_tokens_cap: text(budget.llm_output_tokens_cap),
    daily_cost_usd_cap: text(budget.daily_cost_usd_cap),
    alert_thresholds: budget.alert_thresholds.join(", "),
    enabled: budget.enabled,
  };
}

type Parsed<T> = { value: T } | { error: string };

function stripLeadingZeros(digits: string): string {
  return digits.replace(/^0+(?=\d)/, "");
}

function parseCount(raw: string): Parsed<number | null> {
  const text = raw.trim();
  if (text === "") return { value: null };
  if (text.startsWith("-")) return { error: "Must not be negative." };
  if (!/^\d+$/.test(text)) return { error: "Must be a whole number (no decimals), or empty for no cap." };
  const digits = stripLeadingZeros(text);
  if (digits.length > 16 || Number(digits) > MAX_COUNT) return { error: "Must be at most 1,000,000,000,000,000." };
  return { value: Number(digits) };
}

function parseCost(raw: string): Parsed<string | null> {
  const text = raw.trim();
  if (text === "") return { value: null };
  if (text.startsWith("-")) return { error: "Must not be negative." };
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) return { error: 'Must be a decimal amount in dollars such as "12.50", or empty for no cap.' };
  const whole = stripLeadingZeros(match[1] ?? "0");
  const fraction = match[2] ?? "";
  if (fraction.length > 6) return { error: "At most 6 decimal places." };
  const overMax = whole.length > 13 || (whole.length === 13 && (whole !== "1000000000000" || /[1-9]/.test(fraction)));
  if (overMax) return { error: "Must be at most 1,000,000,000,000." };
  // Kept as a string: money never becomes a float on its way to the gateway.
  return { value: fraction ? `${whole}.${fraction}` : whole };
}

function parseThresholds(raw: string): Parsed<string[]> {
  const items = raw.split(/[\s,]+/).filter((item) => item !== "");
  if (items.length < 1 || items.length > 5) return { error: "Give 1 to 5 thresholds, e.g. 0.8, 1.0." };
  for (const item of items) {
    const match = /^(\d+)(?:\.(\d{1,4}))?$/.exec(item);
    const whole = match ? stripLeadingZeros(match[1] ?? "0") : "";
    const fraction = match?.[2] ?? "";
    const aboveZero = /[1-9]/.test(item);
    const atMostTen = whole.length === 1 || (whole === "10" && !/[1-9]/.test(fraction));
    if (!match || !aboveZero || !atMostTen) {
      return { error: `"${item}" is not a fraction above 0 and at most 10 (up to 4 decimals).` };
    }
  }
  return { value: items };
}

function parseScope(raw: string, tiers: readonly string[]): Parsed<string> {
  const scope = raw.trim();
  if (scope === "global" || USER_SCOPE.test(scope)) return { value: scope };
  const knownTier = tiers.length > 0 ? tiers.includes(scope) : TIER_NAME.test(scope);
  if (knownTier) return { value: scope };
  const tierList = tiers.length > 0 ? ` (${tiers.join(", ")})` : "";
  return { error: `Use global, a tier${tierList} or user:<id>.` };
}

/** Validates the form; on success returns the exact body to POST. */
export function validateBudget(values: BudgetFormValues, tiers: readonly string[] = []): BudgetValidation {
  const errors: BudgetErrors = {};
  const scope = parseScope(values.apply_scope, tiers);
  if ("error" in scope) errors.apply_scope = scope.error;
  const counts: Partial<Record<CountField, number | null>> = {};
  for (const field of COUNT_FIELDS) {
    const parsed = parseCount(values[field]);
    if ("error" in parsed) errors[field] = parsed.error;
    else counts[field] = parsed.value;
  }
  const cost = parseCost(values.daily_cost_usd_cap);
  if ("error" in cost) errors.daily_cost_usd_cap = cost.error;
  const thresholds = parseThresholds(values.alert_thresholds);
  if ("error" in thresholds) errors.alert_thresholds = thresholds.error;
  if ("error" in scope || "error" in cost || "error" in thresholds || Object.keys(errors).length > 0) {
    return { ok: false, errors };
  }
  return {
    ok: true,
    body: {
      apply_scope: scope.value,
      daily_cpu_ms_cap: counts.daily_cpu_ms_cap ?? null,
      daily_jobs_cap: counts.daily_jobs_cap ?? null,
      llm_input_tokens_cap: counts.llm_input_tokens_cap ?? null,
      llm_output_tokens_cap: counts.llm_output_tokens_cap ?? null,
      daily_cost_usd_cap: cost.value,
      alert_thresholds: thresholds.value,
      enabled: values.enabled,
    },
  };
}
