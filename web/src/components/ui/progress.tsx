import { cn } from "@/lib/utils";

interface ProgressProps {
  /** 0..1; above 1 the bar stays full and turns red. */
  fraction: number;
  label: string;
  className?: string;
}

export function Progress({ fraction, label, className }: ProgressProps) {
  const safe = Number.isFinite(fraction) ? Math.max(0, fraction) : 0;
  const tone = safe >= 1 ? "bg-destructive" : safe >= 0.8 ? "bg-warning" : "bg-primary";
  return (
    <div
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(Math.min(safe, 1) * 100)}
      className={cn("h-2 w-full overflow-hidden rounded-full bg-muted", className)}
    >
      <div className={cn("h-full rounded-full transition-[width]", tone)} style={{ width: `${Math.min(safe, 1) * 100}%` }} />
    </div>
  );
}
