import { describe, expect, it } from "vitest";
import { EMPTY_BUDGET, validateBudget, type BudgetFormValues } from "./budgetForm";

const TIERS = ["free", "pro", "enterprise"];
const values = (patch: Partial<BudgetFormValues>): BudgetFormValues => ({ ...EMPTY_BUDGET, ...patch });

describe("validateBudget", () => {
  it("builds the request body: counts as integers, money as a string, empty as null", () => {
    const result = validateBudget(
      values({ apply_scope: "user:u-1", daily_jobs_cap: "007", daily_cost_usd_cap: "0.123456", alert_thresholds: "0.5 0.9,1" }),
      TIERS,
    );
    expect(result).toEqual({
      ok: true,
      body: {
        apply_scope: "user:u-1",
        daily_cpu_ms_cap: null,
        daily_jobs_cap: 7,
        llm_input_tokens_cap: null,
        llm_output_tokens_cap: null,
        daily_cost_usd_cap: "0.123456",
        alert_thresholds: ["0.5", "0.9", "1"],
        enabled: true,
      },
    });
  });

  it.each<[Partial<BudgetFormValues>, string]>([
    [{ daily_cpu_ms_cap: "-1" }, "daily_cpu_ms_cap"],
    [{ daily_cpu_ms_cap: "2.5" }, "daily_cpu_ms_cap"],
    [{ daily_jobs_cap: "1e3" }, "daily_jobs_cap"],
    [{ llm_output_tokens_cap: "10000000000000000" }, "llm_output_tokens_cap"],
    [{ daily_cost_usd_cap: "1.0000001" }, "daily_cost_usd_cap"],
    [{ daily_cost_usd_cap: "1000000000000.5" }, "daily_cost_usd_cap"],
    [{ daily_cost_usd_cap: "12,50" }, "daily_cost_usd_cap"],
    [{ alert_thresholds: "" }, "alert_thresholds"],
    [{ alert_thresholds: "11" }, "alert_thresholds"],
    [{ alert_thresholds: "0.1 0.2 0.3 0.4 0.5 0.6" }, "alert_thresholds"],
    [{ apply_scope: "team" }, "apply_scope"],
    [{ apply_scope: "user:" }, "apply_scope"],
    [{ apply_scope: "user:has space" }, "apply_scope"],
  ])("rejects %o at %s", (patch, field) => {
    const result = validateBudget(values(patch), TIERS);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(Object.keys(result.errors)).toEqual([field]);
  });

  it("accepts the limits themselves", () => {
    const result = validateBudget(
      values({ daily_cpu_ms_cap: "1000000000000000", daily_cost_usd_cap: "1000000000000", alert_thresholds: "10" }),
      TIERS,
    );
    expect(result.ok).toBe(true);
  });

  it("accepts any tier-like name when the tiers are not known yet", () => {
    expect(validateBudget(values({ apply_scope: "gold" })).ok).toBe(true);
    expect(validateBudget(values({ apply_scope: "gold" }), TIERS).ok).toBe(false);
  });
});
