import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach, beforeEach } from "vitest";

// jsdom has no layout. Recharts' ResponsiveContainer measures its box once on mount and then
// listens to a ResizeObserver; give its box a phone-card size so the charts really draw.
class ResizeObserverStub implements ResizeObserver {
  observe(): void {}
  unobserve(): void {}
  disconnect(): void {}
}

globalThis.ResizeObserver = ResizeObserverStub;

// findBy* and waitFor wait for what the test awaits; their default of 1 s is a guess at how
// fast a machine renders, which a loaded one misses. Waiting longer only matters on failure.
configure({ asyncUtilTimeout: 10_000 });

const measure = HTMLElement.prototype.getBoundingClientRect;
HTMLElement.prototype.getBoundingClientRect = function getBoundingClientRect(this: HTMLElement): DOMRect {
  if (this.classList.contains("recharts-responsive-container")) return new DOMRect(0, 0, 320, 240);
  return measure.call(this);
};

beforeEach(() => {
  window.history.replaceState(null, "", "/admin/cost/");
  window.localStorage.clear();
});

afterEach(() => {
  cleanup();
});
