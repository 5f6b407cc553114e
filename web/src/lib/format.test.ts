import { describe, expect, it } from "vitest";
import { formatClock, formatCount, formatDurationMs, formatPercent, formatUsd, formatUsdExact, formatUsdNumber } from "./format";

describe("formatUsd", () => {
  it.each([
    ["12.34567800", "$12.35"],
    ["1234567.5", "$1,234,567.50"],
    ["0", "$0.00"],
    ["0.5", "$0.50"],
    ["0.004200", "<$0.01"],
    ["1234.5", "$1,234.50"],
    ["0.00036", "<$0.01"],
    ["0.00000000", "$0.00"],
    ["0.01", "$0.01"],
    ["0.009", "<$0.01"],
    ["-0.004", "-<$0.01"],
    ["-", "—"],
    ["", "—"],
    ["9007199254740993.01", "$9,007,199,254,740,993.01"],
    ["-3.5", "-$3.50"],
    ["abc", "—"],
    ["1e5", "—"],
  ])("%s -> %s", (input, expected) => {
    expect(formatUsd(input)).toBe(expected);
  });
});

describe("formatUsdExact (the title)", () => {
  it.each([
    ["0.00036", "$0.00036"],
    ["0.00036000", "$0.00036"],
    ["1234.5", "$1,234.50"],
    ["0", "$0.00"],
    ["12.34567800", "$12.345678"],
    ["-", "—"],
  ])("%s -> %s", (input, expected) => {
    expect(formatUsdExact(input)).toBe(expected);
  });

  it("charts' float values follow the same rule", () => {
    expect(formatUsdNumber(0.0042)).toBe("<$0.01");
    expect(formatUsdNumber(1.5)).toBe("$1.50");
    expect(formatUsdNumber(1e-9)).toBe("<$0.01");
    expect(formatUsdNumber(Number.NaN)).toBe("—");
  });
});

describe("other formats", () => {
  it("formats counts, percents, durations and clock times", () => {
    expect(formatCount(1200)).toBe("1,200");
    expect(formatCount("250000")).toBe("250,000");
    expect(formatPercent(0.23)).toBe("23%");
    expect(formatDurationMs(5_000_000)).toBe("1.4 h");
    expect(formatDurationMs(850)).toBe("850 ms");
    expect(formatClock("2026-11-25T18:00:00+00:00", "UTC")).toBe("18:00");
    expect(formatClock("2026-11-25T18:00:00+00:00", "Europe/Berlin")).toBe("19:00");
    expect(formatClock("2026-11-25T18:00:00Z", "Not/AZone")).toBe("18:00");
  });
});
