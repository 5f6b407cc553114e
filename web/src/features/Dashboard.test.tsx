import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { emptySummary, signedInRoutes, summaryFixture } from "@/test/fixtures";
import { fail, mockApi, ok } from "@/test/mockApi";
import { renderApp } from "@/test/render";

const SUMMARY_SECTIONS = ["caps-today", "forecast-card", "chart-cost-by-tier", "chart-jobs-by-domain", "chart-tokens", "unpriced-models"];

describe("dashboard sections", () => {
  it("shows skeletons while loading", async () => {
    const routes = signedInRoutes();
    mockApi(routes);
    renderApp();
    const cards = await screen.findByTestId("summary-cards");
    expect(within(cards).getAllByRole("status").length).toBeGreaterThan(0);
    expect(await within(cards).findByTestId("card-cost-value")).toBeInTheDocument();
  });

  it("draws each chart as SVG when there is data", async () => {
    mockApi(signedInRoutes());
    const { container } = renderApp();
    await screen.findByTestId("card-cost-value");

    await waitFor(() => {
      const area = screen.getByTestId("chart-cost-by-tier");
      expect(area.querySelectorAll(".recharts-area-area").length).toBe(3);
    });
    await waitFor(() => {
      const bars = screen.getByTestId("chart-jobs-by-domain").querySelectorAll(".recharts-bar-rectangle");
      expect(bars.length).toBe(6);
    });
    await waitFor(() => {
      const lines = screen.getByTestId("chart-tokens").querySelectorAll("path.recharts-line-curve");
      expect(lines.length).toBe(3);
    });
    expect(container.querySelectorAll("[data-testid='summary-cards'] svg").length).toBeGreaterThan(0);
  });

  it("marks today as a partial day in the per-day charts", async () => {
    mockApi(signedInRoutes());
    renderApp();
    await screen.findByTestId("card-cost-value");
    for (const id of ["chart-cost-by-tier", "chart-tokens"]) {
      const chart = screen.getByTestId(id);
      await waitFor(() => expect(chart.querySelector(".recharts-reference-area")).not.toBeNull());
      expect(chart).toHaveTextContent("today so far");
      expect(within(chart).getByTestId("partial-day-note")).toHaveTextContent("Nov 25 is today so far, a partial day");
    }
    expect(screen.getByTestId("chart-jobs-by-domain").querySelector(".recharts-reference-area")).toBeNull();
  });

  it("draws no partial day when today is not in the window", async () => {
    const routes = signedInRoutes();
    routes["GET /api/admin/cost/summary?days=7"] = ok(summaryFixture({ partial_date: "2026-11-26" }));
    mockApi(routes);
    renderApp();
    await waitFor(() => expect(screen.getByTestId("chart-cost-by-tier").querySelectorAll(".recharts-area-area").length).toBe(3));
    expect(screen.getByTestId("chart-cost-by-tier").querySelector(".recharts-reference-area")).toBeNull();
    expect(screen.getByTestId("card-cost").querySelector("[data-partial-last]")).toBeNull();
  });

  it("lists the top users", async () => {
    mockApi(signedInRoutes());
    renderApp();
    const rows = await screen.findAllByTestId("top-users-row");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toHaveTextContent("u1");
    expect(rows[0]).toHaveTextContent("$1.23");
    expect(rows[1]).toHaveTextContent("$0.05");
    expect(within(rows[1] ?? document.body).getByText("$0.05")).toHaveAttribute("title", "$0.045");
    expect(screen.getByTestId("unpriced-models")).toHaveTextContent("llm:openai/house-model");
    expect(screen.getByTestId("unpriced-models")).toHaveTextContent("2% of cost");
    expect(screen.getByTestId("unpriced-models")).toHaveTextContent(
      "unknown service 'gemini_txt' for event type 'ai_api_call'",
    );
  });

  it("shows an empty state in every section when there is nothing to show", async () => {
    mockApi({
      ...signedInRoutes(),
      "GET /api/admin/cost/summary?days=7": ok(emptySummary()),
      "GET /api/admin/cost/users": ok({ days: 7, users: [] }),
      "GET /api/admin/cost/budgets": ok({ budgets: [] }),
    });
    renderApp();
    expect(await screen.findByText("All models priced")).toBeInTheDocument();
    expect(screen.getByTestId("caps-today")).toHaveTextContent("No caps set");
    expect(screen.getByTestId("chart-cost-by-tier")).toHaveTextContent("No cost recorded");
    expect(screen.getByTestId("chart-jobs-by-domain")).toHaveTextContent("No jobs");
    expect(screen.getByTestId("chart-tokens")).toHaveTextContent("No LLM tokens");
    expect(await screen.findByText("No users yet")).toBeInTheDocument();
    expect(screen.queryByTestId("top-users-table")).not.toBeInTheDocument();
    expect(await screen.findByText("No budgets yet")).toBeInTheDocument();
    expect(screen.getByTestId("entity-view")).toHaveTextContent("Nothing looked up yet");
    expect(screen.getByTestId("card-cost-value")).toHaveTextContent("$0.00");
  });

  it("shows an error with a retry in each section when its request fails", async () => {
    const api = mockApi({
      ...signedInRoutes(),
      "GET /api/admin/cost/summary?days=7": fail(500, "summary exploded"),
      "GET /api/admin/cost/users": fail(503, "users unavailable"),
      "GET /api/admin/cost/budgets": fail(500, "budgets unavailable"),
    });
    const { user } = renderApp();
    await screen.findByTestId("summary-cards");

    for (const id of ["summary-cards", ...SUMMARY_SECTIONS]) {
      expect(await within(screen.getByTestId(id)).findByRole("alert")).toHaveTextContent("summary exploded");
    }
    expect(await within(screen.getByTestId("top-users")).findByRole("alert")).toHaveTextContent("users unavailable");
    expect(await within(screen.getByTestId("budgets")).findByRole("alert")).toHaveTextContent("budgets unavailable");

    api.route("GET /api/admin/cost/users", ok({ days: 7, users: [] }));
    await user.click(within(screen.getByTestId("top-users")).getByRole("button", { name: "Retry" }));
    expect(await within(screen.getByTestId("top-users")).findByText("No users yet")).toBeInTheDocument();
  });

  it("explains a 403 as a missing admin role", async () => {
    mockApi({ ...signedInRoutes(), "GET /api/admin/cost/users": fail(403, "the admin role is required") });
    renderApp();
    await screen.findByTestId("top-users");
    expect(await within(screen.getByTestId("top-users")).findByRole("alert")).toHaveTextContent("admin role is required");
  });
});
