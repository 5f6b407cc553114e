import { Usd } from "@/components/Usd";
import { useSummary } from "@/api/hooks";
import type { CapMetric, CapToday } from "@/api/types";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Progress } from "@/components/ui/progress";
import { formatClock, formatCount, formatPercent } from "@/lib/format";

const METRIC_LABELS: Record<CapMetric, string> = {
  jobs: "Jobs",
  cpu_ms: "CPU ms",
  llm_input_tokens: "LLM input tokens",
  llm_output_tokens: "LLM output tokens",
  cost_usd: "Cost",
};

function Amount({ metric, value }: { metric: CapMetric; value: string }) {
  return metric === "cost_usd" ? <Usd value={value} /> : <span>{formatCount(value)}</span>;
}

function Outlook({ cap, timeZone }: { cap: CapToday; timeZone: string }) {
  if (cap.fraction >= 1) return <Badge variant="destructive">cap reached</Badge>;
  if (cap.reached_at) {
    return (
      <span className="text-xs text-warning" data-testid="cap-forecast">
        reaches its cap at {formatClock(cap.reached_at, timeZone)} at today's pace
      </span>
    );
  }
  return <span className="text-xs text-muted-foreground">within its cap at today's pace</span>;
}

function CapRow({ cap, timeZone }: { cap: CapToday; timeZone: string }) {
  const label = `${cap.scope} · ${METRIC_LABELS[cap.metric] ?? cap.metric}`;
  return (
    <li data-testid="cap-row" className="grid gap-1.5">
      <div className="flex flex-wrap items-baseline justify-between gap-x-3 gap-y-0.5 text-sm">
        <span className="min-w-0 font-medium [overflow-wrap:anywhere]">{label}</span>
        <span className="text-xs text-muted-foreground tabular-nums">
          <Amount metric={cap.metric} value={cap.used} /> / <Amount metric={cap.metric} value={cap.cap} /> · {formatPercent(cap.fraction)}
        </span>
      </div>
      <Progress fraction={cap.fraction} label={`${label}: ${formatPercent(cap.fraction)} of the cap used`} />
      <Outlook cap={cap} timeZone={timeZone} />
    </li>
  );
}

export function CapsToday({ range }: { range: string }) {
  const query = useSummary(range);
  return (
    <Card data-testid="caps-today">
      <CardHeader>
        <CardTitle>Today against caps</CardTitle>
        <CardDescription>{query.data ? `Times in ${query.data.timezone}` : "Global and tier caps"}</CardDescription>
      </CardHeader>
      <CardContent>
        <QueryView query={query} loading={<LoadingRows rows={3} label="Loading caps" />}>
          {(summary) => (
            <>
              <p className="mb-4 text-sm">
                Spent today so far:{" "}
                <span data-testid="today-cost" className="font-semibold tabular-nums">
                  <Usd value={summary.today.cost_usd} />
                </span>
              </p>
              {summary.today.caps.length === 0 ? (
                <EmptyState title="No caps set">Add a global or tier budget below to cap daily use.</EmptyState>
              ) : (
                <ul className="grid gap-4">
                  {summary.today.caps.map((cap) => (
                    <CapRow key={`${cap.scope}/${cap.metric}`} cap={cap} timeZone={summary.timezone} />
                  ))}
                </ul>
              )}
            </>
          )}
        </QueryView>
      </CardContent>
    </Card>
  );
}
