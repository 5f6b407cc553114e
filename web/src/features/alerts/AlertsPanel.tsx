import { useState } from "react";
import { useAlerts } from "@/api/hooks";
import type { AlertStatus, BudgetAlert, CapMetric } from "@/api/types";
import { CsvLink } from "@/components/CsvLink";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Usd } from "@/components/Usd";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Segmented, type SegmentedOption } from "@/components/ui/segmented";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatCount, formatDateTime, formatDay, formatPercent } from "@/lib/format";

type StatusFilter = AlertStatus | "";

const FILTERS: readonly SegmentedOption<StatusFilter>[] = [
  { value: "", label: "All", testId: "alerts-status-all" },
  { value: "sent", label: "Sent", testId: "alerts-status-sent" },
  { value: "failed", label: "Failed", testId: "alerts-status-failed" },
  { value: "pending", label: "Pending", testId: "alerts-status-pending" },
];

const STATUS_BADGE = { sent: "success", failed: "destructive", pending: "warning" } as const;

export const METRIC_LABELS: Record<CapMetric, string> = {
  jobs: "jobs",
  cpu_ms: "CPU ms",
  llm_input_tokens: "LLM input tokens",
  llm_output_tokens: "LLM output tokens",
  cost_usd: "cost",
};

/** A cap's figure: money by the money rule, anything else as a count. */
export function CapAmount({ metric, value }: { metric: CapMetric; value: string }) {
  return metric === "cost_usd" ? <Usd value={value} /> : <span>{formatCount(value)}</span>;
}

function Counts({ counts }: { counts: { sent: number; failed: number; pending: number; resolved: number } }) {
  const items = [
    ["sent", "Sent"],
    ["failed", "Failed"],
    ["pending", "Pending"],
    ["resolved", "Resolved"],
  ] as const;
  return (
    <dl className="grid grid-cols-2 gap-3 sm:grid-cols-4">
      {items.map(([key, label]) => (
        <div key={key} className="min-w-0 rounded-lg border p-2">
          <dt className="text-xs text-muted-foreground">{label}</dt>
          <dd data-testid={`alerts-count-${key}`} className="text-lg font-semibold tabular-nums">
            {formatCount(counts[key])}
          </dd>
        </div>
      ))}
    </dl>
  );
}

function AlertRow({ alert }: { alert: BudgetAlert }) {
  return (
    <TableRow data-testid="alerts-row" data-status={alert.status} data-kind={alert.kind}>
      <TableCell className="tabular-nums">{formatDateTime(alert.created_at)}</TableCell>
      <TableCell>{formatDay(alert.day)}</TableCell>
      <TableCell className="max-w-32 truncate" title={alert.scope}>
        {alert.scope}
      </TableCell>
      <TableCell>{METRIC_LABELS[alert.metric] ?? alert.metric}</TableCell>
      <TableCell className="text-right tabular-nums">{formatPercent(Number(alert.threshold))}</TableCell>
      <TableCell>{alert.kind}</TableCell>
      <TableCell className="text-right tabular-nums">
        <CapAmount metric={alert.metric} value={alert.used} /> / <CapAmount metric={alert.metric} value={alert.cap} />
      </TableCell>
      <TableCell>
        <Badge variant={STATUS_BADGE[alert.status]}>{alert.status}</Badge>
      </TableCell>
      <TableCell className="text-right tabular-nums">{formatCount(alert.attempts)}</TableCell>
      <TableCell className="max-w-48 truncate text-xs text-muted-foreground" title={alert.last_error ?? undefined}>
        {alert.last_error ?? ""}
      </TableCell>
    </TableRow>
  );
}

/** The budget alerts of the range: how many were delivered, failed or wait, and each, newest first. */
export function AlertsPanel({ range, className }: { range: string; className?: string }) {
  const [status, setStatus] = useState<StatusFilter>("");
  const query = useAlerts(range, status);
  return (
    <Card data-testid="alerts" className={className}>
      <CardHeader>
        <div className="grid min-w-0 gap-1">
          <CardTitle>Alert history</CardTitle>
          <CardDescription>Budget alerts raised in the range and their delivery</CardDescription>
        </div>
        <CsvLink table="alerts" range={range} extra={{ status }} label="the alerts" />
      </CardHeader>
      <CardContent className="grid min-w-0 gap-4">
        <QueryView query={query} loading={<LoadingRows rows={4} label="Loading alerts" />}>
          {(data) => (
            <>
              <Counts counts={data.counts} />
              <Segmented label="Delivery status" options={FILTERS} value={status} onChange={setStatus} className="w-fit max-w-full" />
              {data.alerts.length === 0 ? (
                <EmptyState title="No alerts">{status ? `No ${status} alert in this range.` : "No alert was raised in this range."}</EmptyState>
              ) : (
                <Table data-testid="alerts-table">
                  <TableHeader>
                    <TableRow>
                      <TableHead>Raised</TableHead>
                      <TableHead>Day</TableHead>
                      <TableHead>Scope</TableHead>
                      <TableHead>Metric</TableHead>
                      <TableHead className="text-right">Threshold</TableHead>
                      <TableHead>Kind</TableHead>
                      <TableHead className="text-right">Used / cap</TableHead>
                      <TableHead>Status</TableHead>
                      <TableHead className="text-right">Attempts</TableHead>
                      <TableHead>Last error</TableHead>
                    </TableRow>
                  </TableHeader>
                  <TableBody>
                    {data.alerts.map((alert) => (
                      <AlertRow key={alert.id} alert={alert} />
                    ))}
                  </TableBody>
                </Table>
              )}
            </>
          )}
        </QueryView>
      </CardContent>
    </Card>
  );
}
