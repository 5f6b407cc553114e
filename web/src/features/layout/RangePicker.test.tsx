import { act, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { signedInRoutes, summaryFixture } from "@/test/fixtures";
import { mockApi, ok } from "@/test/mockApi";
import { renderApp } from "@/test/render";

function routes() {
  const all = signedInRoutes();
  all["GET /api/admin/cost/summary?from=2026-11-01&to=2026-11-25"] = ok(
    summaryFixture({ from: "2026-11-01", cards: { ...summaryFixture().cards, cost_usd: "55.5" } }),
  );
  all["GET /api/admin/cost/summary?from=2026-11-02&to=2026-11-03"] = ok(
    summaryFixture({ from: "2026-11-02", to: "2026-11-03", partial_date: null, cards: { ...summaryFixture().cards, cost_usd: "2" } }),
  );
  return all;
}

const searches = (api: ReturnType<typeof mockApi>) => api.calls.map((call) => `${call.path}${call.search}`);

describe("range picker", () => {
  it("asks every panel for the chosen preset and keeps it in the URL", async () => {
    const api = mockApi(routes());
    const { user } = renderApp();
    expect(await screen.findByTestId("card-cost-value")).toHaveTextContent("$12.35");
    expect(screen.getByTestId("range-preset")).toHaveValue("7d");

    await user.selectOptions(screen.getByLabelText("Range"), "30d");

    await waitFor(() => expect(screen.getByTestId("card-cost-value")).toHaveTextContent("$99.50"));
    expect(window.location.search).toBe("?days=30");
    await waitFor(() => {
      for (const path of ["summary?days=30", "users?days=30&limit=20", "breakdown?days=30&by=model", "decisions?days=30", "alerts?days=30"]) {
        expect(searches(api)).toContain(`/api/admin/cost/${path}`);
      }
    });
    expect(screen.getByTestId("csv-top_users")).toHaveAttribute("href", "/api/admin/cost/export.csv?days=30&table=top_users&limit=20");

    await user.selectOptions(screen.getByLabelText("Range"), "this-month");
    await waitFor(() => expect(screen.getByTestId("card-cost-value")).toHaveTextContent("$55.50"));
    expect(window.location.search).toBe("?from=2026-11-01&to=2026-11-25");
    expect(screen.getByTestId("range-preset")).toHaveValue("this-month");
  });

  it("starts from the URL, and back goes to the previous range", async () => {
    window.history.replaceState(null, "", "/admin/cost/?days=30");
    const api = mockApi(routes());
    const { user } = renderApp();
    expect(await screen.findByTestId("card-cost-value")).toHaveTextContent("$99.50");
    expect(api.calls.some((call) => call.search === "?days=7")).toBe(false);

    await user.selectOptions(screen.getByLabelText("Range"), "7d");
    await waitFor(() => expect(screen.getByTestId("card-cost-value")).toHaveTextContent("$12.35"));
    await act(async () => {
      const popped = new Promise((resolve) => window.addEventListener("popstate", resolve, { once: true }));
      window.history.back();
      await popped;
    });
    await waitFor(() => expect(screen.getByTestId("card-cost-value")).toHaveTextContent("$99.50"));
    expect(screen.getByTestId("range-preset")).toHaveValue("30d");
  });

  it("refuses a bad custom range inline and applies a good one", async () => {
    mockApi(routes());
    const { user } = renderApp();
    await screen.findByTestId("card-cost-value");
    await user.selectOptions(screen.getByLabelText("Range"), "custom");
    const from = screen.getByLabelText("From");
    const to = screen.getByLabelText("To");
    expect(from).toHaveValue("2026-11-19"); // the current range, to start from

    await user.clear(to);
    await user.type(to, "2026-11-10");
    await user.clear(from);
    await user.type(from, "2026-11-12");
    await user.click(screen.getByRole("button", { name: "Apply" }));
    expect(screen.getByTestId("range-error")).toHaveTextContent("The start date must not be after the end date.");
    expect(from).toHaveAttribute("aria-invalid", "true");
    expect(window.location.search).toBe("");

    await user.clear(to);
    await user.type(to, "2026-11-26");
    await user.click(screen.getByRole("button", { name: "Apply" }));
    expect(screen.getByTestId("range-error")).toHaveTextContent("after today");

    await user.clear(from);
    await user.type(from, "2026-08-01");
    await user.clear(to);
    await user.type(to, "2026-11-25");
    await user.click(screen.getByRole("button", { name: "Apply" }));
    expect(screen.getByTestId("range-error")).toHaveTextContent("At most 92 days.");

    await user.clear(from);
    await user.type(from, "2026-11-02");
    await user.clear(to);
    await user.type(to, "2026-11-03");
    await user.click(screen.getByRole("button", { name: "Apply" }));
    await waitFor(() => expect(screen.getByTestId("card-cost-value")).toHaveTextContent("$2.00"));
    expect(window.location.search).toBe("?from=2026-11-02&to=2026-11-03");
    expect(screen.queryByTestId("range-error")).toBeNull();
    expect(screen.getByTestId("range-preset")).toHaveValue("custom");
    expect(screen.queryByTestId("window-partial")).toBeNull(); // today is not in it
  });

  it("says today is so far when the range includes it", async () => {
    mockApi(routes());
    renderApp();
    expect(await screen.findByTestId("window-partial")).toHaveTextContent("Nov 25 is today so far");
  });
});
