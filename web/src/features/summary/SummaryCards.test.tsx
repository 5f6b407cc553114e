import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { emptySummary, signedInRoutes, summaryFixture } from "@/test/fixtures";
import { mockApi, ok } from "@/test/mockApi";
import { renderApp } from "@/test/render";

describe("summary cards", () => {
  it("formats money from decimal strings and the other figures for reading", async () => {
    mockApi(signedInRoutes());
    renderApp();
    expect(await screen.findByTestId("card-cost-value")).toHaveTextContent("$12.35");
    expect(screen.getByTestId("card-jobs-value")).toHaveTextContent("1,200");
    expect(screen.getByTestId("card-ai-calls-value")).toHaveTextContent("340");
    expect(screen.getByTestId("card-cpu-ms-value")).toHaveTextContent("5M");
    expect(screen.getByTestId("card-cpu-ms")).toHaveTextContent("1.4 h of CPU");
    expect(screen.getByTestId("card-tokens-in-value")).toHaveTextContent("900K");
    expect(screen.getByTestId("card-tokens-out-value")).toHaveTextContent("120K");
    expect(screen.getByTestId("card-cache-hit-rate-value")).toHaveTextContent("23%");
    expect(screen.getByTestId("forecast-mtd")).toHaveTextContent("$40.00");
    expect(screen.getByTestId("forecast-projected")).toHaveTextContent("$47.21");
    expect(screen.getByTestId("today-cost")).toHaveTextContent("$3.25");
    expect(screen.getByTestId("estimated-usage")).toHaveTextContent("4 calls");
    expect(screen.getByTestId("estimated-usage")).toHaveTextContent("$0.25");
  });

  it("says under the forecast how it was projected", async () => {
    mockApi(signedInRoutes());
    renderApp();
    expect(await screen.findByTestId("forecast-method")).toHaveTextContent(
      "Projected as month to date + 6.5 days x $1.11/day, the average of the last 7 full days.",
    );
    expect(screen.getByTitle("$1.1092")).toHaveTextContent("$1.11"); // the exact figure kept
  });

  it("says so when there was no full day to project from", async () => {
    const routes = signedInRoutes();
    routes["GET /api/admin/cost/summary?days=7"] = ok(emptySummary());
    mockApi(routes);
    renderApp();
    expect(await screen.findByTestId("forecast-method")).toHaveTextContent(
      "Projected as month to date only: no full day of data in the 7 days before today",
    );
    expect(screen.getByTestId("forecast-projected")).toHaveTextContent("$0.00");
  });

  it("draws today's point of each sparkline as a partial day", async () => {
    mockApi(signedInRoutes());
    renderApp();
    const cost = await screen.findByTestId("card-cost");
    const line = within(cost).getByRole("img", { name: "Cost per day; the last point is today so far" });
    await waitFor(() => expect(line.querySelector(".sparkline-partial path")).not.toBeNull());
  });

  it("never rounds money through a float", async () => {
    // 9007199254740993.01 is not representable as a double (it would print ...992.00).
    const routes = signedInRoutes();
    routes["GET /api/admin/cost/summary?days=7"] = ok(
      summaryFixture({ cards: { ...summaryFixture().cards, cost_usd: "9007199254740993.01" } }),
    );
    mockApi(routes);
    renderApp();
    expect(await screen.findByTestId("card-cost-value")).toHaveTextContent("$9,007,199,254,740,993.01");
  });

  it("shows a nonzero amount under a cent as <$0.01", async () => {
    const routes = signedInRoutes();
    routes["GET /api/admin/cost/summary?days=7"] = ok(
      summaryFixture({ cards: { ...summaryFixture().cards, cost_usd: "0.004200" } }),
    );
    mockApi(routes);
    renderApp();
    expect(await screen.findByTestId("card-cost-value")).toHaveTextContent("<$0.01");
    expect(screen.getByTestId("card-cost-value")).toHaveAttribute("title", "$0.0042");
  });

  it("shows today's use against each cap, with the time the pace reaches it", async () => {
    mockApi(signedInRoutes());
    renderApp();
    const caps = await screen.findByTestId("caps-today");
    const rows = await within(caps).findAllByTestId("cap-row");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toHaveTextContent("250,000 / 1,000,000");
    expect(rows[0]).toHaveTextContent("reaches its cap at 18:00 at today's pace");
    expect(rows[1]).toHaveTextContent("$10.50 / $50.00");
    expect(within(caps).getAllByRole("progressbar")[0]).toHaveAttribute("aria-valuenow", "25");
  });
});

describe("change against the previous period", () => {
  it("shows up, down and no-comparison on the cards, the previous dates in the title", async () => {
    const routes = signedInRoutes();
    const base = summaryFixture();
    routes["GET /api/admin/cost/summary?days=7"] = ok({
      ...base,
      previous: { from: "2026-11-12", to: "2026-11-18", cards: { ...base.cards } },
      change: { cost_usd: 0.25, jobs: -0.5, ai_calls: null, tokens_in: 0, tokens_out: 0.1 },
    });
    mockApi(routes);
    renderApp();
    const cost = await screen.findByTestId("card-cost-change");
    expect(cost).toHaveTextContent("▲ 25% vs previous");
    expect(cost).toHaveAttribute("title", "vs Nov 12 – Nov 18");
    expect(screen.getByTestId("card-jobs-change")).toHaveTextContent("▼ 50% vs previous");
    expect(screen.getByTestId("card-ai-calls-change")).toHaveTextContent("— vs previous");
  });
});
