import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { Breakdown } from "@/api/types";
import { mockApi, ok } from "@/test/mockApi";
import { renderWithClient } from "@/test/render";
import { BreakdownCard } from "./BreakdownCard";

function breakdown(by: Breakdown["by"], label: string): Breakdown {
  const totals = { cost_usd: "3", tokens_in: 10, tokens_out: 2, calls: 4 };
  return {
    by,
    from: "2026-11-19",
    to: "2026-11-25",
    days: 7,
    timezone: "UTC",
    partial_date: null,
    previous: { from: "2026-11-12", to: "2026-11-18" },
    total: totals,
    previous_total: totals,
    rows: [
      { key: null, label: "not an LLM call", cost_usd: "0.5", tokens_in: 0, tokens_out: 0, calls: 0, share: 0.1, previous_cost_usd: "0", change: null },
      { key: label, label, cost_usd: "2.5", tokens_in: 10, tokens_out: 2, calls: 4, share: 0.9, previous_cost_usd: "2", change: 0.25 },
    ],
  };
}

describe("breakdown card", () => {
  it("renders the rows with the rest last, switches tabs by click and arrow key", async () => {
    const api = mockApi({
      "GET /api/admin/cost/breakdown?days=7&by=model": ok(breakdown("model", "gpt-4o")),
      "GET /api/admin/cost/breakdown?days=7&by=service": ok(breakdown("service", "openai")),
      "GET /api/admin/cost/breakdown?days=7&by=domain": ok(breakdown("domain", "audio")),
    });
    const { user } = renderWithClient(<BreakdownCard range="days=7" />);
    const rows = await screen.findAllByTestId(/breakdown-(row|rest)/);
    expect(rows[0]).toHaveTextContent("gpt-4o");
    expect(rows[0]).toHaveTextContent("$2.50");
    expect(rows[0]).toHaveTextContent("▲ 25%");
    expect(rows[1]).toHaveAttribute("data-testid", "breakdown-rest");
    expect(rows[1]).toHaveTextContent("not an LLM call");
    expect(within(rows[1] ?? document.body).getByText("—")).toBeInTheDocument();
    expect(screen.getByTestId("breakdown-csv")).toHaveAttribute("href", "/api/admin/cost/export.csv?days=7&table=breakdown&by=model");

    await user.click(screen.getByRole("tab", { name: "Service" }));
    expect(await screen.findByText("openai")).toBeInTheDocument();
    expect(screen.getByRole("tab", { name: "Service" })).toHaveAttribute("aria-selected", "true");
    await user.keyboard("{ArrowRight}");
    expect(await screen.findByText("audio")).toBeInTheDocument();
    expect(screen.getByRole("tab", { name: "Domain" })).toHaveFocus();
    expect(api.callsTo("GET", "/api/admin/cost/breakdown")).toHaveLength(3);
    expect(window.location.search).toBe("?by=domain");
    expect(screen.getByTestId("breakdown-csv")).toHaveAttribute("href", "/api/admin/cost/export.csv?days=7&table=breakdown&by=domain");
  });
});
