import type { BreakdownRow } from "@/api/types";
import { Usd } from "@/components/Usd";
import { Progress } from "@/components/ui/progress";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatChange, formatCount, formatPercent } from "@/lib/format";
import { cn } from "@/lib/utils";

/** Keyed rows by cost, then the rest (key null), muted, last. */
export function BreakdownTable({ rows }: { rows: readonly BreakdownRow[] }) {
  const ordered = [...rows.filter((row) => row.key !== null), ...rows.filter((row) => row.key === null)];
  return (
    <Table data-testid="breakdown-table">
      <TableHeader>
        <TableRow>
          <TableHead>Name</TableHead>
          <TableHead className="text-right">Cost</TableHead>
          <TableHead>Share</TableHead>
          <TableHead className="text-right">Change</TableHead>
          <TableHead className="text-right">Tokens in</TableHead>
          <TableHead className="text-right">Tokens out</TableHead>
          <TableHead className="text-right">Calls</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {ordered.map((row) => (
          <TableRow
            key={row.key ?? "(rest)"}
            data-testid={row.key === null ? "breakdown-rest" : "breakdown-row"}
            className={cn(row.key === null && "text-muted-foreground italic")}
          >
            <TableCell className="max-w-56 truncate" title={row.label}>
              {row.label}
            </TableCell>
            <TableCell className="text-right tabular-nums">
              <Usd value={row.cost_usd} />
            </TableCell>
            <TableCell className="min-w-24">
              <Progress fraction={row.share} label={`${row.label}: ${formatPercent(row.share)} of the cost`} />
            </TableCell>
            <TableCell className="text-right tabular-nums">{formatChange(row.change)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.tokens_in)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.tokens_out)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.calls)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
