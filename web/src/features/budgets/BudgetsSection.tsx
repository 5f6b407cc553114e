import { useState } from "react";
import { useBudgets } from "@/api/hooks";
import type { Budget } from "@/api/types";
import { QueryView } from "@/components/QueryView";
import { LoadingRows } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EMPTY_BUDGET, valuesFromBudget, type BudgetFormValues } from "@/lib/budgetForm";
import { cn } from "@/lib/utils";
import { BudgetForm } from "./BudgetForm";
import { BudgetList } from "./BudgetList";

interface Draft {
  /** Remounts the form, so an edit starts from the chosen budget with no stale errors. */
  key: number;
  values: BudgetFormValues;
}

export function BudgetsSection({ tiers, className }: { tiers: readonly string[]; className?: string }) {
  const query = useBudgets();
  const [draft, setDraft] = useState<Draft>({ key: 0, values: EMPTY_BUDGET });
  const edit = (budget: Budget) => setDraft((current) => ({ key: current.key + 1, values: valuesFromBudget(budget) }));
  const reset = () => setDraft((current) => ({ key: current.key + 1, values: EMPTY_BUDGET }));

  return (
    <Card data-testid="budgets" className={cn(className)}>
      <CardHeader>
        <CardTitle>Budgets</CardTitle>
        <CardDescription>Daily caps per scope; alerts fire at the thresholds</CardDescription>
      </CardHeader>
      <CardContent className="grid gap-6 lg:grid-cols-2">
        <div className="grid min-w-0 content-start gap-3">
          <h3 className="text-xs font-medium text-muted-foreground">Current budgets</h3>
          <QueryView query={query} loading={<LoadingRows rows={3} label="Loading budgets" />}>
            {(data) => <BudgetList budgets={data.budgets} onEdit={edit} />}
          </QueryView>
        </div>
        <div className="grid min-w-0 content-start gap-3">
          <h3 className="text-xs font-medium text-muted-foreground">Create or edit a budget</h3>
          <BudgetForm key={draft.key} initial={draft.values} tiers={tiers} focusOnMount={draft.key > 0} onReset={reset} />
        </div>
      </CardContent>
    </Card>
  );
}
