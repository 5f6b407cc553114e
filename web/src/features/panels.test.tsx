import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ALERTS, DECISIONS, USER_DETAIL, signedInRoutes } from "@/test/fixtures";
import { fail, mockApi, ok } from "@/test/mockApi";
import { renderApp } from "@/test/render";

describe("throttle decisions panel", () => {
  it("tabulates tier x action and draws each action per day", async () => {
    const api = mockApi(signedInRoutes());
    const { user } = renderApp();
    const panel = await screen.findByTestId("decisions");
    const rows = await within(panel).findAllByTestId("decisions-row");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toHaveTextContent("free");
    expect(within(rows[0] ?? panel).getByText("1,200")).toHaveAttribute("data-action", "ALLOW");
    expect(rows[0]).toHaveTextContent("1,310");
    await waitFor(() => expect(panel.querySelectorAll(".recharts-bar-rectangle").length).toBeGreaterThan(0));
    expect(within(panel).getByTestId("partial-day-note")).toHaveTextContent("Nov 25 is today so far");
    expect(within(panel).getByTestId("csv-decisions")).toHaveAttribute("href", "/api/admin/cost/export.csv?days=7&table=decisions");

    await user.selectOptions(within(panel).getByLabelText("Tier"), "pro");
    await waitFor(() => expect(api.calls.some((call) => call.path === "/api/admin/cost/decisions" && call.search === "?days=7&tier=pro")).toBe(true));
    expect(within(panel).getByTestId("csv-decisions")).toHaveAttribute("href", "/api/admin/cost/export.csv?days=7&table=decisions&tier=pro");
    expect(DECISIONS.totals).toHaveLength(2);
  });
});

describe("alert history panel", () => {
  it("counts by status, lists the alerts newest first, filters by status", async () => {
    const api = mockApi(signedInRoutes());
    const { user } = renderApp();
    const panel = await screen.findByTestId("alerts");
    expect(await within(panel).findByTestId("alerts-count-sent")).toHaveTextContent("3");
    expect(within(panel).getByTestId("alerts-count-failed")).toHaveTextContent("1");
    expect(within(panel).getByTestId("alerts-count-pending")).toHaveTextContent("2");
    expect(within(panel).getByTestId("alerts-count-resolved")).toHaveTextContent("1");
    const rows = within(panel).getAllByTestId("alerts-row");
    expect(rows).toHaveLength(ALERTS.alerts.length);
    expect(rows[0]).toHaveTextContent("$40.12 / $50.00");
    expect(rows[0]).toHaveTextContent("80%");
    expect(rows[0]).toHaveTextContent("webhook answered 503");
    expect(rows[1]).toHaveTextContent("4,200 / 5,000");

    api.route("GET /api/admin/cost/alerts?days=7&status=failed", ok({ ...ALERTS, alerts: [] }));
    await user.click(within(panel).getByTestId("alerts-status-failed"));
    expect(await within(panel).findByText("No failed alert in this range.")).toBeInTheDocument();
    expect(within(panel).getByTestId("alerts-count-sent")).toHaveTextContent("3"); // counts ignore the filter
    expect(within(panel).getByTestId("csv-alerts")).toHaveAttribute("href", "/api/admin/cost/export.csv?days=7&table=alerts&status=failed");
  });
});

describe("user page", () => {
  it("opens from a top user's link, keeping the range, and goes back", async () => {
    window.history.replaceState(null, "", "/admin/cost/?days=30");
    const routes = signedInRoutes();
    routes["GET /api/admin/cost/users/u1?days=30"] = ok(USER_DETAIL);
    mockApi(routes);
    const { user } = renderApp();
    const link = (await screen.findAllByTestId("top-users-link"))[0];
    expect(link).toHaveAttribute("href", "?days=30&user=u1");
    await user.click(link ?? document.body);

    const page = await screen.findByTestId("user-page");
    expect(window.location.search).toBe("?days=30&user=u1");
    expect(await within(page).findByTestId("user-cost_usd")).toHaveTextContent("$1.23");
    expect(within(page).getByTestId("user-cost-change")).toHaveTextContent("▲ 23.5%");
    expect(within(page).getByTestId("user-jobs")).toHaveTextContent("10");
    const days = within(page).getAllByTestId("user-day-row");
    expect(days).toHaveLength(7);
    expect(days[0]).toHaveTextContent("today so far");
    expect(days[6]).toHaveTextContent("<$0.01");
    expect(within(page).getByTestId("user-model-row")).toHaveTextContent("openai/gpt-4o");
    expect(within(page).getByTestId("user-service-row")).toHaveTextContent("<$0.01");
    expect(within(page).getAllByTestId("user-event-row")[1]).toHaveTextContent("failed");
    // Only the event whose price needs a reason shows one.
    expect(within(page).getAllByTestId("user-event-price-note").map((note) => note.textContent)).toEqual(["not priced yet"]);
    expect(within(page).getByTestId("user-cap-row")).toHaveTextContent("$10.00 / $50.00 · 20%");
    expect(within(page).getByTestId("user-decision-row")).toHaveTextContent("DEFER");
    for (const table of ["user_days", "user_models", "user_services", "user_events"]) {
      expect(within(page).getByTestId(`csv-${table}`)).toHaveAttribute("href", `/api/admin/cost/export.csv?days=30&table=${table}&user=u1`);
    }
    expect(screen.queryByTestId("summary-cards")).toBeNull();

    await user.click(within(page).getByTestId("user-back"));
    expect(await screen.findByTestId("summary-cards")).toBeInTheDocument();
    expect(window.location.search).toBe("?days=30");
  });

  it("says so when there is no such user", async () => {
    window.history.replaceState(null, "", "/admin/cost/?user=nobody");
    const routes = signedInRoutes();
    routes["GET /api/admin/cost/users/nobody?days=7"] = fail(404, "no such user", "user_id");
    mockApi(routes);
    renderApp();
    expect(await screen.findByTestId("user-missing")).toHaveTextContent("No such user");
    expect(screen.getByTestId("user-back")).toHaveAttribute("href", "/admin/cost/");
  });
});

describe("CSV links", () => {
  it("puts one on every table of the dashboard, for the range", async () => {
    mockApi(signedInRoutes());
    renderApp();
    await screen.findAllByTestId("top-users-row");
    const hrefs = Array.from(document.querySelectorAll<HTMLAnchorElement>("a[download]")).map((a) => a.getAttribute("href"));
    expect(hrefs).toEqual(
      expect.arrayContaining([
        "/api/admin/cost/export.csv?days=7&table=cost_by_day",
        "/api/admin/cost/export.csv?days=7&table=breakdown&by=model",
        "/api/admin/cost/export.csv?days=7&table=top_users&limit=20",
        "/api/admin/cost/export.csv?days=7&table=unpriced",
        "/api/admin/cost/export.csv?days=7&table=decisions",
        "/api/admin/cost/export.csv?days=7&table=alerts",
      ]),
    );
  });
});
