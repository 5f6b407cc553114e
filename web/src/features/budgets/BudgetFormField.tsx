import { useId, type ChangeEvent } from "react";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";

interface BudgetFormFieldProps {
  name: string;
  label: string;
  testId: string;
  value: string;
  error: string | undefined;
  hint?: string;
  placeholder?: string;
  inputMode?: "numeric" | "decimal" | "text";
  list?: string;
  onChange: (value: string) => void;
}

/** A labelled input whose error (client-side or the gateway's 400) is shown right under it. */
export function BudgetFormField(props: BudgetFormFieldProps) {
  const { name, label, testId, value, error, hint, placeholder, inputMode = "text", list, onChange } = props;
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : null, error ? errorId : null].filter(Boolean).join(" ") || undefined;
  return (
    <div className="grid min-w-0 content-start gap-1.5">
      <Label htmlFor={id}>{label}</Label>
      <Input
        id={id}
        name={name}
        data-testid={testId}
        value={value}
        placeholder={placeholder}
        inputMode={inputMode}
        list={list}
        autoComplete="off"
        spellCheck={false}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy}
        onChange={(event: ChangeEvent<HTMLInputElement>) => onChange(event.target.value)}
      />
      {hint ? (
        <p id={hintId} className="text-xs text-muted-foreground">
          {hint}
        </p>
      ) : null}
      {error ? (
        <p id={errorId} data-testid={`${testId}-error`} role="alert" className="text-xs text-destructive">
          {error}
        </p>
      ) : null}
    </div>
  );
}
