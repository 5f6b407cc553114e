import { formatUsd, formatUsdExact } from "@/lib/format";

/** A money figure by the one rule (lib/format.ts formatUsd), the exact amount in its title. */
export function Usd({ value, className, testId }: { value: string | null | undefined; className?: string; testId?: string }) {
  const text = value ?? "";
  return (
    <span className={className} title={formatUsdExact(text)} data-testid={testId}>
      {formatUsd(text)}
    </span>
  );
}
