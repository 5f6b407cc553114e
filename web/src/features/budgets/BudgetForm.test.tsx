import { screen, waitFor, within } from "@testing-library/react";
import type { UserEvent } from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { BUDGET, signedInRoutes } from "@/test/fixtures";
import { fail, mockApi, ok } from "@/test/mockApi";
import { renderApp } from "@/test/render";

async function fill(user: UserEvent, testId: string, value: string) {
  const input = screen.getByTestId(testId);
  await user.clear(input);
  if (value) await user.type(input, value);
}

async function openForm() {
  const form = await screen.findByTestId("budget-form");
  await screen.findByTestId("budget-item");
  // The tiers the scope may name come from the summary.
  await screen.findByTestId("card-cost-value");
  return form;
}

describe("budget form", () => {
  it.each([
    ["budget-cpu-ms", "-5", "Must not be negative."],
    ["budget-cpu-ms", "1.5", "Must be a whole number"],
    ["budget-jobs", "ten", "Must be a whole number"],
    ["budget-llm-input", "-1", "Must not be negative."],
    ["budget-cost-usd", "1.1234567", "At most 6 decimal places."],
    ["budget-cost-usd", "-2", "Must not be negative."],
    ["budget-thresholds", "0.8, 0", "is not a fraction above 0"],
    ["budget-scope", "team:a", "Use global, a tier (free, pro, enterprise) or user:<id>."],
  ])("rejects %s = %s before anything is sent", async (testId, value, message) => {
    const api = mockApi(signedInRoutes());
    const { user } = renderApp();
    await openForm();
    await fill(user, testId, value);
    await user.click(screen.getByTestId("budget-save"));

    expect(await screen.findByTestId(`${testId}-error`)).toHaveTextContent(message);
    expect(screen.getByTestId(testId)).toHaveAttribute("aria-invalid", "true");
    expect(screen.queryByTestId("confirm-dialog")).not.toBeInTheDocument();
    expect(api.callsTo("POST", "/api/admin/cost/budgets")).toHaveLength(0);
  });

  it("posts only after the confirmation, with money as a string", async () => {
    const api = mockApi({ ...signedInRoutes(), "POST /api/admin/cost/budgets": ok({ budget: { ...BUDGET, apply_scope: "pro" } }) });
    const { user } = renderApp();
    await openForm();
    await fill(user, "budget-scope", "pro");
    await fill(user, "budget-cpu-ms", "1000000");
    await fill(user, "budget-cost-usd", "12.50");
    await user.click(screen.getByTestId("budget-save"));

    const dialog = await screen.findByTestId("confirm-dialog");
    expect(dialog).toHaveTextContent("the pro tier");
    expect(dialog).toHaveTextContent("$12.50");
    expect(api.callsTo("POST", "/api/admin/cost/budgets")).toHaveLength(0);

    await user.click(within(dialog).getByTestId("confirm-yes"));

    await waitFor(() => expect(api.callsTo("POST", "/api/admin/cost/budgets")).toHaveLength(1));
    expect(api.callsTo("POST", "/api/admin/cost/budgets")[0]?.body).toEqual({
      apply_scope: "pro",
      daily_cpu_ms_cap: 1000000,
      daily_jobs_cap: null,
      llm_input_tokens_cap: null,
      llm_output_tokens_cap: null,
      daily_cost_usd_cap: "12.50",
      alert_thresholds: ["0.8", "1.0"],
      enabled: true,
    });
    expect(await screen.findByTestId("budget-saved")).toHaveTextContent("Saved the budget for pro.");
    expect(screen.queryByTestId("confirm-dialog")).not.toBeInTheDocument();
  });

  it("sends nothing when the confirmation is cancelled", async () => {
    const api = mockApi(signedInRoutes());
    const { user } = renderApp();
    await openForm();
    await fill(user, "budget-jobs", "500");
    await user.click(screen.getByTestId("budget-save"));
    await user.click(within(await screen.findByTestId("confirm-dialog")).getByTestId("confirm-no"));

    expect(screen.queryByTestId("confirm-dialog")).not.toBeInTheDocument();
    expect(api.callsTo("POST", "/api/admin/cost/budgets")).toHaveLength(0);
  });

  it("shows a 400 from the gateway beside the field it names", async () => {
    mockApi({
      ...signedInRoutes(),
      "POST /api/admin/cost/budgets": fail(400, "daily_cpu_ms_cap must be a whole number from 0 to 10^15, or null", "daily_cpu_ms_cap"),
    });
    const { user } = renderApp();
    await openForm();
    await fill(user, "budget-cpu-ms", "5");
    await user.click(screen.getByTestId("budget-save"));
    await user.click(within(await screen.findByTestId("confirm-dialog")).getByTestId("confirm-yes"));

    expect(await screen.findByTestId("budget-cpu-ms-error")).toHaveTextContent("daily_cpu_ms_cap must be a whole number");
    expect(screen.getByTestId("budget-cpu-ms")).toHaveAttribute("aria-invalid", "true");
    expect(screen.queryByTestId("budget-form-error")).not.toBeInTheDocument();
  });

  it("shows an error that names no field under the form", async () => {
    mockApi({ ...signedInRoutes(), "POST /api/admin/cost/budgets": fail(503, "database unavailable") });
    const { user } = renderApp();
    await openForm();
    await user.click(screen.getByTestId("budget-save"));
    await user.click(within(await screen.findByTestId("confirm-dialog")).getByTestId("confirm-yes"));
    expect(await screen.findByTestId("budget-form-error")).toHaveTextContent("database unavailable");
  });

  it("fills the form from a listed budget to edit it", async () => {
    mockApi(signedInRoutes());
    const { user } = renderApp();
    await openForm();
    await user.click(screen.getByRole("button", { name: "Edit budget global" }));
    expect(screen.getByTestId("budget-scope")).toHaveValue("global");
    expect(screen.getByTestId("budget-cpu-ms")).toHaveValue("1000000");
    expect(screen.getByTestId("budget-cost-usd")).toHaveValue("50.00");
    expect(screen.getByTestId("budget-thresholds")).toHaveValue("0.8, 1.0");
  });
});
