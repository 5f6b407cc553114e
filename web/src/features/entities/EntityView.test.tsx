import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { EPISODE, PODCAST, signedInRoutes } from "@/test/fixtures";
import { fail, mockApi, ok } from "@/test/mockApi";
import { renderApp } from "@/test/render";

describe("episode and podcast costs", () => {
  it("shows an episode's breakdown and recalculates it", async () => {
    const api = mockApi({
      ...signedInRoutes(),
      "GET /api/admin/cost/episodes/ep1": ok(EPISODE),
      "POST /api/admin/cost/episodes/ep1/recalculate": ok({ ...EPISODE, total_cost_usd: "0.15" }),
    });
    const { user } = renderApp();
    const view = await screen.findByTestId("entity-view");
    await user.type(within(view).getByTestId("entity-id"), "ep1");
    await user.click(within(view).getByTestId("entity-lookup"));

    expect(await within(view).findByTestId("episode-total")).toHaveTextContent("$0.12");
    expect(view).toHaveTextContent("openai");
    expect(view).toHaveTextContent("storage_mb");

    await user.click(within(view).getByTestId("episode-recalculate"));
    await waitFor(() => expect(within(view).getByTestId("episode-total")).toHaveTextContent("$0.15"));
    expect(api.callsTo("POST", "/api/admin/cost/episodes/ep1/recalculate")).toHaveLength(1);
  });

  it("lists a podcast's episodes and opens one", async () => {
    mockApi({
      ...signedInRoutes(),
      "GET /api/admin/cost/podcasts/pod1/episodes": ok(PODCAST),
      "GET /api/admin/cost/episodes/ep1": ok(EPISODE),
    });
    const { user } = renderApp();
    const view = await screen.findByTestId("entity-view");
    await user.click(within(view).getByTestId("entity-kind-podcast"));
    await user.type(within(view).getByTestId("entity-id"), "pod1");
    await user.click(within(view).getByTestId("entity-lookup"));

    const rows = await within(view).findAllByTestId("podcast-episode-row");
    expect(rows).toHaveLength(2);
    expect(within(view).getByTestId("podcast-episodes")).toHaveTextContent("$0.25");
    await user.click(within(rows[0] as HTMLElement).getByRole("button", { name: "ep1" }));
    expect(await within(view).findByTestId("episode-total")).toHaveTextContent("$0.12");
  });

  it("says so when an episode has no costs (404)", async () => {
    mockApi({ ...signedInRoutes(), "GET /api/admin/cost/episodes/nope": fail(404, "no costs for episode 'nope' yet", "episode_id") });
    const { user } = renderApp();
    const view = await screen.findByTestId("entity-view");
    await user.type(within(view).getByTestId("entity-id"), "nope");
    await user.click(within(view).getByTestId("entity-lookup"));
    expect(await within(view).findByText("No costs for episode nope yet")).toBeInTheDocument();
  });

  it("says so when a podcast has no episode costs (404)", async () => {
    mockApi({
      ...signedInRoutes(),
      "GET /api/admin/cost/podcasts/none/episodes": fail(404, "no episode costs for podcast 'none' yet", "podcast_id"),
    });
    const { user } = renderApp();
    const view = await screen.findByTestId("entity-view");
    await user.click(within(view).getByTestId("entity-kind-podcast"));
    await user.type(within(view).getByTestId("entity-id"), "none");
    await user.click(within(view).getByTestId("entity-lookup"));
    expect(await within(view).findByText("No episode costs for podcast none")).toBeInTheDocument();
  });

  it("rejects an id the gateway would refuse, without a request", async () => {
    const api = mockApi(signedInRoutes());
    const { user } = renderApp();
    const view = await screen.findByTestId("entity-view");
    await user.type(within(view).getByTestId("entity-id"), "a b/c");
    await user.click(within(view).getByTestId("entity-lookup"));
    expect(await within(view).findByRole("alert")).toHaveTextContent("1 to 64 letters");
    expect(api.calls.some((call) => call.path.includes("/episodes/"))).toBe(false);
  });
});
