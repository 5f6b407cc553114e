import { act, renderHook } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { daysBefore, monthRange, readRange, useRange, validateCustom, writeRange } from "./range";

const TODAY = "2026-11-25";

describe("readRange", () => {
  it.each([
    ["", "7d", "days=7"],
    ["?days=30", "30d", "days=30"],
    ["?days=90", "90d", "days=90"],
    ["?days=bogus", "7d", "days=7"],
    ["?days=12", "7d", "days=7"],
    ["?from=2026-11-01&to=2026-11-25", "this-month", "from=2026-11-01&to=2026-11-25"],
    ["?from=2026-10-01&to=2026-10-31", "last-month", "from=2026-10-01&to=2026-10-31"],
    ["?from=2026-11-01&to=2026-11-10", "custom", "from=2026-11-01&to=2026-11-10"],
    ["?from=2026-11-10&to=2026-11-01", "7d", "days=7"],
    ["?from=2026-01-01&to=2026-11-10", "7d", "days=7"],
    ["?from=2026-11-01&to=2026-12-31", "7d", "days=7"],
    ["?from=2026-02-30&to=2026-03-01", "7d", "days=7"],
  ])("%s -> %s (%s)", (search, preset, query) => {
    const range = readRange(search, TODAY);
    expect(range.preset).toBe(preset);
    expect(range.query).toBe(query);
  });

  it("places the days of a preset, today last", () => {
    expect(readRange("?days=7", TODAY)).toMatchObject({ from: "2026-11-19", to: TODAY });
    expect(readRange("?days=90", TODAY)).toMatchObject({ from: daysBefore(TODAY, 89), to: TODAY });
  });
});

describe("months and custom ranges", () => {
  it("places last month across a year", () => {
    expect(monthRange("last-month", "2026-01-15")).toEqual({ from: "2025-12-01", to: "2025-12-31" });
    expect(monthRange("this-month", "2026-03-01")).toEqual({ from: "2026-03-01", to: "2026-03-01" });
  });

  it("validates a custom range", () => {
    expect(validateCustom("2026-11-01", "2026-11-25", TODAY)).toBeNull();
    expect(validateCustom("2026-11-10", "2026-11-01", TODAY)).toMatch(/after the end/);
    expect(validateCustom("2026-11-01", "2026-11-26", TODAY)).toMatch(/after today/);
    expect(validateCustom("2026-08-01", "2026-11-25", TODAY)).toMatch(/92 days/);
    expect(validateCustom("2026-08-26", "2026-11-25", TODAY)).toBeNull(); // exactly 92
    expect(validateCustom("", "2026-11-25", TODAY)).toMatch(/both dates/);
  });

  it("writes the URL, keeping the other parameters", () => {
    expect(writeRange("?user=u1&days=7", { preset: "30d" }, TODAY)).toBe("?user=u1&days=30");
    expect(writeRange("?days=7", { preset: "custom", from: "2026-11-01", to: "2026-11-02" }, TODAY)).toBe(
      "?from=2026-11-01&to=2026-11-02",
    );
    expect(writeRange("?from=2026-11-01&to=2026-11-02&by=tier", { preset: "last-month" }, TODAY)).toBe(
      "?by=tier&from=2026-10-01&to=2026-10-31",
    );
  });

  it.each(["7d", "30d", "90d", "this-month", "last-month"] as const)("round-trips %s through the URL", (preset) => {
    expect(readRange(writeRange("?user=u1", { preset }, TODAY), TODAY).preset).toBe(preset);
  });
});

describe("useRange", () => {
  it("pushes a history entry per choice, and back reads the previous range", async () => {
    const { result } = renderHook(() => useRange(TODAY));
    expect(result.current[0].query).toBe("days=7");
    act(() => result.current[1]({ preset: "30d" }));
    expect(window.location.search).toBe("?days=30");
    expect(result.current[0].preset).toBe("30d");
    act(() => result.current[1]({ preset: "custom", from: "2026-11-02", to: "2026-11-03" }));
    expect(result.current[0].query).toBe("from=2026-11-02&to=2026-11-03");
    await act(async () => {
      const popped = new Promise((resolve) => window.addEventListener("popstate", resolve, { once: true }));
      window.history.back();
      await popped;
    });
    expect(result.current[0].preset).toBe("30d");
  });

  it("adds no history entry for the range already shown", () => {
    window.history.replaceState(null, "", "/admin/cost/?days=30");
    const { result } = renderHook(() => useRange(TODAY));
    const push = vi.spyOn(window.history, "pushState");
    act(() => result.current[1]({ preset: "30d" }));
    expect(push).not.toHaveBeenCalled();
    act(() => result.current[1]({ preset: "90d" }));
    expect(push).toHaveBeenCalledTimes(1);
    push.mockRestore();
  });
});
