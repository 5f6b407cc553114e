import { describe, expect, it } from "vitest";
import { monthRange, readRange, validateCustom, writeRange } from "./range";

const TODAY = "2026-11-25";

describe("readRange", () => {
  it.each([
    ["", "7d", "days=7"],
    ["?range=30d", "30d", "days=30"],
    ["?range=90d", "90d", "days=90"],
    ["?range=bogus", "7d", "days=7"],
    ["?range=this-month", "this-month", "from=2026-11-01&to=2026-11-25"],
    ["?range=last-month", "last-month", "from=2026-10-01&to=2026-10-31"],
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
    expect(validateCustom("", "2026-11-25", TODAY)).toMatch(/both dates/);
  });

  it("writes the URL, keeping the other parameters", () => {
    expect(writeRange("?user=u1&range=7d", { preset: "30d" })).toBe("?user=u1&range=30d");
    expect(writeRange("?range=7d", { preset: "custom", from: "2026-11-01", to: "2026-11-02" })).toBe(
      "?from=2026-11-01&to=2026-11-02",
    );
  });
});
