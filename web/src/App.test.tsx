import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ME, signedInRoutes } from "@/test/fixtures";
import { fail, mockApi, ok } from "@/test/mockApi";
import { renderApp } from "@/test/render";

describe("sign-in flow", () => {
  it("shows the sign-in screen on a 401 and the data after signing in", async () => {
    const api = mockApi({ ...signedInRoutes(), "GET /api/admin/me": fail(401, "sign in") });
    api.route("POST /api/admin/session", () => {
      api.route("GET /api/admin/me", ok(ME));
      return ok(ME);
    });
    const { user } = renderApp();

    const token = await screen.findByTestId("signin-token");
    expect(screen.queryByTestId("summary-cards")).not.toBeInTheDocument();
    await user.type(token, "s3cret");
    await user.click(screen.getByTestId("signin-submit"));

    const cost = await screen.findByTestId("card-cost-value");
    expect(cost).toHaveTextContent("$12.35");
    const [signIn] = api.callsTo("POST", "/api/admin/session");
    expect(signIn?.body).toEqual({ token: "s3cret" });
    expect(api.calls.every((call) => call.credentials === "same-origin")).toBe(true);
    expect(screen.queryByTestId("signin-token")).not.toBeInTheDocument();
  });

  it("keeps the sign-in screen and shows the gateway's message for a bad token", async () => {
    mockApi({
      "GET /api/admin/me": fail(401, "sign in"),
      "POST /api/admin/session": fail(401, "unknown token"),
    });
    const { user } = renderApp();
    await user.type(await screen.findByTestId("signin-token"), "wrong");
    await user.click(screen.getByTestId("signin-submit"));

    expect(await screen.findByTestId("signin-error")).toHaveTextContent("unknown token");
    expect(screen.getByTestId("signin-token")).toBeInTheDocument();
  });

  it("returns to the sign-in screen when a data request answers 401 (session expired)", async () => {
    mockApi({ ...signedInRoutes(), "GET /api/admin/cost/users": fail(401, "session expired") });
    renderApp();
    expect(await screen.findByTestId("signin-token")).toBeInTheDocument();
  });

  it("signs out with DELETE and shows the sign-in screen", async () => {
    const api = mockApi({ ...signedInRoutes(), "DELETE /api/admin/session": { status: 204 } });
    const { user } = renderApp();
    await screen.findByTestId("card-cost-value");
    await user.click(screen.getByTestId("signout"));

    expect(await screen.findByTestId("signin-token")).toBeInTheDocument();
    expect(api.callsTo("DELETE", "/api/admin/session")).toHaveLength(1);
  });

  it("shows an error with a retry when the gateway cannot be reached", async () => {
    const api = mockApi({ "GET /api/admin/me": fail(502, "bad gateway") });
    const { user } = renderApp();
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("bad gateway");

    api.route("GET /api/admin/me", fail(401, "sign in"));
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(screen.getByTestId("signin-token")).toBeInTheDocument());
  });
});
