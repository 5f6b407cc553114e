import { useId, useState, type ChangeEvent, type FormEvent } from "react";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { MAX_RANGE_DAYS, PRESETS, validateCustom, type Preset, type Range, type RangeChoice } from "@/lib/range";

interface RangePickerProps {
  range: Range;
  today: string;
  onChange: (next: RangeChoice) => void;
}

/** The range: a preset, or custom dates checked before they are applied (an inline error says why not). */
export function RangePicker({ range, today, onChange }: RangePickerProps) {
  const id = useId();
  const [editing, setEditing] = useState(false);
  const [from, setFrom] = useState(range.from);
  const [to, setTo] = useState(range.to);
  const [error, setError] = useState<string | null>(null);
  const custom = editing || range.preset === "custom";

  const choose = (event: ChangeEvent<HTMLSelectElement>) => {
    const preset = event.target.value as Preset;
    if (preset === "custom") {
      setFrom(range.from);
      setTo(range.to);
      setError(null);
      setEditing(true);
      return;
    }
    setEditing(false);
    setError(null);
    onChange({ preset });
  };

  const apply = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const problem = validateCustom(from, to, today);
    setError(problem);
    if (problem) return;
    setEditing(false);
    onChange({ preset: "custom", from, to });
  };

  return (
    <div className="flex min-w-0 flex-wrap items-end gap-2" data-testid="range-picker">
      <div className="grid gap-1">
        <Label htmlFor={`${id}-preset`}>Range</Label>
        <select
          id={`${id}-preset`}
          data-testid="range-preset"
          value={custom ? "custom" : range.preset}
          onChange={choose}
          className="h-9 rounded-md border border-input bg-background px-2 text-sm shadow-xs outline-none focus-visible:border-ring focus-visible:ring-[3px] focus-visible:ring-ring/50"
        >
          {PRESETS.map((preset) => (
            <option key={preset.value} value={preset.value}>
              {preset.label}
            </option>
          ))}
          <option value="custom">Custom…</option>
        </select>
      </div>
      {custom ? (
        <form onSubmit={apply} noValidate className="flex min-w-0 flex-wrap items-end gap-2" aria-label="Custom range">
          <div className="grid gap-1">
            <Label htmlFor={`${id}-from`}>From</Label>
            <Input
              id={`${id}-from`}
              type="date"
              data-testid="range-from"
              value={from}
              max={today}
              onChange={(event) => setFrom(event.target.value)}
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? `${id}-error` : undefined}
              className="w-36"
            />
          </div>
          <div className="grid gap-1">
            <Label htmlFor={`${id}-to`}>To</Label>
            <Input
              id={`${id}-to`}
              type="date"
              data-testid="range-to"
              value={to}
              max={today}
              onChange={(event) => setTo(event.target.value)}
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? `${id}-error` : undefined}
              className="w-36"
            />
          </div>
          <Button type="submit" size="sm" className="h-9" data-testid="range-apply" title={`At most ${MAX_RANGE_DAYS} days, up to today`}>
            Apply
          </Button>
          {error ? (
            <p id={`${id}-error`} role="alert" data-testid="range-error" className="basis-full text-xs text-destructive">
              {error}
            </p>
          ) : null}
        </form>
      ) : null}
    </div>
  );
}
