import type { Budget } from "@/api/types";
import { EmptyState } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { formatDateTime } from "@/lib/format";
import { describeCaps, describeThresholds } from "./describe";

function BudgetItem({ budget, onEdit }: { budget: Budget; onEdit: (budget: Budget) => void }) {
  const caps = describeCaps(budget).filter((cap) => cap.value !== "no cap");
  return (
    <li data-testid="budget-item" className="grid gap-2 rounded-lg border p-3">
      <div className="flex flex-wrap items-center gap-2">
        <Badge variant="outline" className="max-w-full truncate font-mono">
          {budget.apply_scope}
        </Badge>
        <Badge variant={budget.enabled ? "success" : "secondary"}>{budget.enabled ? "enabled" : "disabled"}</Badge>
        <Button variant="ghost" size="sm" className="ml-auto" onClick={() => onEdit(budget)} aria-label={`Edit budget ${budget.apply_scope}`}>
          Edit
        </Button>
      </div>
      {caps.length === 0 ? (
        <p className="text-xs text-muted-foreground">No caps: this budget only records the scope.</p>
      ) : (
        <dl className="grid grid-cols-1 gap-x-4 gap-y-1 text-xs sm:grid-cols-2">
          {caps.map((cap) => (
            <div key={cap.label} className="flex min-w-0 justify-between gap-2">
              <dt className="text-muted-foreground">{cap.label}</dt>
              <dd className="tabular-nums" title={cap.exact}>
                {cap.value}
              </dd>
            </div>
          ))}
        </dl>
      )}
      <p className="text-xs text-muted-foreground [overflow-wrap:anywhere]">
        Alerts at {describeThresholds(budget.alert_thresholds)} · updated by {budget.updated_by} on{" "}
        {formatDateTime(budget.updated_at)}
      </p>
    </li>
  );
}

export function BudgetList({ budgets, onEdit }: { budgets: readonly Budget[]; onEdit: (budget: Budget) => void }) {
  if (budgets.length === 0) {
    return <EmptyState title="No budgets yet">Nothing is capped. Create a budget with the form.</EmptyState>;
  }
  return (
    <ul data-testid="budget-list" className="grid gap-3">
      {budgets.map((budget) => (
        <BudgetItem key={budget.apply_scope} budget={budget} onEdit={onEdit} />
      ))}
    </ul>
  );
}
