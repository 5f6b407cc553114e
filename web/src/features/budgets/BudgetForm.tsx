import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { ApiError } from "@/api/client";
import { useSaveBudget } from "@/api/hooks";
import type { BudgetUpsert } from "@/api/types";
import { errorMessage } from "@/components/states";
import { Button } from "@/components/ui/button";
import { ConfirmDialog } from "@/components/ui/dialog";
import {
  BUDGET_FIELDS,
  isBudgetField,
  validateBudget,
  type BudgetErrors,
  type BudgetField,
  type BudgetFormValues,
} from "@/lib/budgetForm";
import { BudgetFormField } from "./BudgetFormField";
import { describeCaps, describeScope, describeThresholds } from "./describe";

type TextField = Exclude<BudgetField, "enabled">;

interface FieldSpec {
  field: TextField;
  label: string;
  testId: string;
  inputMode: "numeric" | "decimal" | "text";
  placeholder?: string;
  hint?: string;
}

const FIELDS: readonly FieldSpec[] = [
  { field: "daily_cpu_ms_cap", label: "Daily CPU ms cap", testId: "budget-cpu-ms", inputMode: "numeric", placeholder: "no cap", hint: "daily_cpu_ms_cap; empty: no cap." },
  { field: "daily_jobs_cap", label: "Daily jobs cap", testId: "budget-jobs", inputMode: "numeric", placeholder: "no cap", hint: "daily_jobs_cap; empty: no cap." },
  { field: "llm_input_tokens_cap", label: "LLM input tokens cap (per day)", testId: "budget-llm-input", inputMode: "numeric", placeholder: "no cap", hint: "llm_input_tokens_cap; empty: no cap." },
  { field: "llm_output_tokens_cap", label: "LLM output tokens cap (per day)", testId: "budget-llm-output", inputMode: "numeric", placeholder: "no cap", hint: "llm_output_tokens_cap; empty: no cap." },
  { field: "daily_cost_usd_cap", label: "Daily cost cap (USD)", testId: "budget-cost-usd", inputMode: "decimal", placeholder: "no cap", hint: "daily_cost_usd_cap; up to 6 decimal places." },
  { field: "alert_thresholds", label: "Alert thresholds", testId: "budget-thresholds", inputMode: "decimal", hint: "Fractions of the cap, e.g. 0.8, 1.0." },
];

interface BudgetFormProps {
  initial: BudgetFormValues;
  tiers: readonly string[];
  /** Scroll to and focus the form when it opens for an edit. */
  focusOnMount?: boolean;
  onReset: () => void;
}

function focusFirstInvalid(form: HTMLFormElement, errors: BudgetErrors): void {
  const first = BUDGET_FIELDS.find((field) => errors[field]);
  const element = first ? form.elements.namedItem(first) : null;
  if (element instanceof HTMLElement) element.focus();
}

function ConfirmSummary({ body }: { body: BudgetUpsert }) {
  return (
    <div className="grid gap-2">
      <p>
        This replaces the budget for <strong className="text-foreground">{describeScope(body.apply_scope)}</strong>. The
        throttle applies it within a second.
      </p>
      <dl className="grid gap-1 text-xs">
        {describeCaps(body).map((cap) => (
          <div key={cap.label} className="flex justify-between gap-2">
            <dt>{cap.label}</dt>
            <dd className="text-foreground tabular-nums" title={cap.exact}>
              {cap.value}
            </dd>
          </div>
        ))}
        <div className="flex justify-between gap-2">
          <dt>Alerts at</dt>
          <dd className="text-foreground">{describeThresholds(body.alert_thresholds)}</dd>
        </div>
        <div className="flex justify-between gap-2">
          <dt>Enabled</dt>
          <dd className="text-foreground">{body.enabled ? "yes" : "no"}</dd>
        </div>
      </dl>
    </div>
  );
}

export function BudgetForm({ initial, tiers, focusOnMount = false, onReset }: BudgetFormProps) {
  const [values, setValues] = useState<BudgetFormValues>(initial);
  const [errors, setErrors] = useState<BudgetErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [pending, setPending] = useState<BudgetUpsert | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const save = useSaveBudget();
  const form = useRef<HTMLFormElement>(null);
  const scopeList = useId();

  useEffect(() => {
    const element = form.current;
    if (!focusOnMount || !element) return;
    element.scrollIntoView?.({ behavior: "smooth", block: "start" });
    const scope = element.elements.namedItem("apply_scope");
    if (scope instanceof HTMLElement) scope.focus({ preventScroll: true });
  }, [focusOnMount]);

  function change(field: TextField, value: string) {
    setValues((current) => ({ ...current, [field]: value }));
    setErrors((current) => ({ ...current, [field]: undefined }));
    setSaved(null);
  }

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setFormError(null);
    setSaved(null);
    const result = validateBudget(values, tiers);
    if (!result.ok) {
      setErrors(result.errors);
      focusFirstInvalid(event.currentTarget, result.errors);
      return;
    }
    setErrors({});
    setPending(result.body);
  }

  function confirm() {
    if (!pending) return;
    save.mutate(pending, {
      onSuccess: ({ budget }) => {
        setPending(null);
        setSaved(`Saved the budget for ${budget.apply_scope}.`);
      },
      onError: (error) => {
        setPending(null);
        if (error instanceof ApiError && isBudgetField(error.field)) setErrors({ [error.field]: error.message });
        else setFormError(errorMessage(error));
      },
    });
  }

  return (
    <form ref={form} noValidate onSubmit={submit} data-testid="budget-form" aria-label="Budget" className="grid min-w-0 content-start gap-4">
      <BudgetFormField
        name="apply_scope"
        label="Scope"
        testId="budget-scope"
        value={values.apply_scope}
        error={errors.apply_scope}
        hint="global, a tier, or user:<id>"
        list={scopeList}
        onChange={(value) => change("apply_scope", value)}
      />
      <datalist id={scopeList}>
        {["global", ...tiers].map((scope) => (
          <option key={scope} value={scope} />
        ))}
      </datalist>
      <div className="grid gap-4 sm:grid-cols-2">
        {FIELDS.map((spec) => (
          <BudgetFormField
            key={spec.field}
            name={spec.field}
            label={spec.label}
            testId={spec.testId}
            value={values[spec.field]}
            error={errors[spec.field]}
            hint={spec.hint}
            placeholder={spec.placeholder}
            inputMode={spec.inputMode}
            onChange={(value) => change(spec.field, value)}
          />
        ))}
      </div>
      <label className="flex items-center gap-2 text-sm">
        <input
          type="checkbox"
          name="enabled"
          data-testid="budget-enabled"
          checked={values.enabled}
          onChange={(event) => setValues((current) => ({ ...current, enabled: event.target.checked }))}
          className="size-4 accent-primary"
        />
        Enabled
        {errors.enabled ? <span role="alert" className="text-xs text-destructive">{errors.enabled}</span> : null}
      </label>
      {formError ? (
        <p role="alert" data-testid="budget-form-error" className="text-sm text-destructive [overflow-wrap:anywhere]">
          {formError}
        </p>
      ) : null}
      {saved ? (
        <p role="status" data-testid="budget-saved" className="text-sm text-success">
          {saved}
        </p>
      ) : null}
      <div className="flex flex-wrap gap-2">
        <Button type="submit" data-testid="budget-save" disabled={save.isPending}>
          Save budget
        </Button>
        <Button variant="outline" onClick={onReset}>
          New budget
        </Button>
      </div>
      <ConfirmDialog
        open={pending !== null}
        title="Save this budget?"
        confirmLabel="Save budget"
        pending={save.isPending}
        onConfirm={confirm}
        onCancel={() => setPending(null)}
      >
        {pending ? <ConfirmSummary body={pending} /> : null}
      </ConfirmDialog>
    </form>
  );
}
