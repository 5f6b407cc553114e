import { useId, useState } from "react";
import { useDecisions } from "@/api/hooks";
import type { Decisions } from "@/api/types";
import { CsvLink } from "@/components/CsvLink";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Label } from "@/components/ui/label";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { PartialDayNote } from "@/features/charts/PartialDay";
import { formatCount } from "@/lib/format";
import { DecisionsChart } from "./DecisionsChart";

function TotalsTable({ data }: { data: Decisions }) {
  return (
    <Table data-testid="decisions-table">
      <TableHeader>
        <TableRow>
          <TableHead>Tier</TableHead>
          {data.actions.map((action) => (
            <TableHead key={action} className="text-right">
              {action}
            </TableHead>
          ))}
          <TableHead className="text-right">Total</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {data.totals.map((row) => (
          <TableRow key={row.tier} data-testid="decisions-row" data-tier={row.tier}>
            <TableCell className="font-medium">{row.tier}</TableCell>
            {data.actions.map((action) => (
              <TableCell key={action} className="text-right tabular-nums" data-action={action}>
                {formatCount(row[action])}
              </TableCell>
            ))}
            <TableCell className="text-right font-medium tabular-nums" data-action="total">
              {formatCount(row.total)}
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

/** What the throttle decided: totals by tier and action, and each action per day. */
export function DecisionsPanel({ range, tiers, className }: { range: string; tiers: readonly string[]; className?: string }) {
  const id = useId();
  const [tier, setTier] = useState("");
  const query = useDecisions(range, tier);
  return (
    <Card data-testid="decisions" className={className}>
      <CardHeader>
        <div className="grid min-w-0 gap-1">
          <CardTitle>Throttle decisions</CardTitle>
          <CardDescription>Checks answered in the range, by tier and action</CardDescription>
        </div>
        <div className="flex flex-wrap items-center gap-2">
          <Label htmlFor={`${id}-tier`} className="sr-only">
            Tier
          </Label>
          <select
            id={`${id}-tier`}
            data-testid="decisions-tier"
            value={tier}
            onChange={(event) => setTier(event.target.value)}
            className="h-7 rounded-md border border-input bg-background px-2 text-xs outline-none focus-visible:ring-[3px] focus-visible:ring-ring/50"
          >
            <option value="">All tiers</option>
            {tiers.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
          <CsvLink table="decisions" range={range} extra={{ tier }} label="the throttle decisions per day" />
        </div>
      </CardHeader>
      <CardContent className="grid min-w-0 gap-4">
        <QueryView query={query} loading={<LoadingRows rows={4} label="Loading throttle decisions" />}>
          {(data) =>
            data.totals.length === 0 ? (
              <EmptyState title="No decisions">The throttle answered no check in this range.</EmptyState>
            ) : (
              <>
                <TotalsTable data={data} />
                <div data-testid="decisions-chart" className="min-w-0">
                  <DecisionsChart data={data} />
                  {data.partial_date ? <PartialDayNote date={data.partial_date} /> : null}
                </div>
              </>
            )
          }
        </QueryView>
      </CardContent>
    </Card>
  );
}
