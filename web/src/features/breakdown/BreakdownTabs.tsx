import type { KeyboardEvent } from "react";
import type { BreakdownBy } from "@/api/types";
import { cn } from "@/lib/utils";

export const BREAKDOWN_TABS: readonly { value: BreakdownBy; label: string }[] = [
  { value: "model", label: "Model" },
  { value: "service", label: "Service" },
  { value: "domain", label: "Domain" },
  { value: "tier", label: "Tier" },
];

/** A tablist: the selected tab is the one in the tab order; arrow keys, Home and End move. */
export function BreakdownTabs({ value, onChange }: { value: BreakdownBy; onChange: (by: BreakdownBy) => void }) {
  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const index = BREAKDOWN_TABS.findIndex((tab) => tab.value === value);
    const last = BREAKDOWN_TABS.length - 1;
    const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: last }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    const tab = BREAKDOWN_TABS[(next + BREAKDOWN_TABS.length) % BREAKDOWN_TABS.length];
    if (!tab) return;
    onChange(tab.value);
    event.currentTarget.querySelector<HTMLButtonElement>(`[data-by="${tab.value}"]`)?.focus();
  };
  return (
    <div role="tablist" aria-label="Break the cost down by" onKeyDown={onKeyDown} className="inline-flex h-9 items-center rounded-lg bg-muted p-1">
      {BREAKDOWN_TABS.map((tab) => {
        const selected = tab.value === value;
        return (
          <button
            key={tab.value}
            type="button"
            role="tab"
            id={`breakdown-tab-${tab.value}`}
            aria-selected={selected}
            aria-controls="breakdown-panel"
            tabIndex={selected ? 0 : -1}
            data-by={tab.value}
            onClick={() => onChange(tab.value)}
            className={cn(
              "inline-flex h-7 items-center rounded-md px-3 text-xs font-medium whitespace-nowrap text-muted-foreground outline-none focus-visible:ring-[3px] focus-visible:ring-ring/50",
              selected && "bg-background text-foreground shadow-sm",
            )}
          >
            {tab.label}
          </button>
        );
      })}
    </div>
  );
}
