import { Usd } from "@/components/Usd";
import { useSummary } from "@/api/hooks";
import { QueryView } from "@/components/QueryView";
import { LoadingRows } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import type { ReactNode } from "react";

function Figure({ label, value, testId }: { label: string; value: ReactNode; testId: string }) {
  return (
    <div className="min-w-0">
      <dt className="text-xs text-muted-foreground">{label}</dt>
      <dd data-testid={testId} className="text-2xl font-semibold tabular-nums [overflow-wrap:anywhere]">
        {value}
      </dd>
    </div>
  );
}

// A dollar amount in the gateway's words ("$1.0300/day"), shown by the one money rule.
const DOLLARS = /\$(-?\d+(?:\.\d+)?)/g;

/** The method's text, its dollar amounts by the money rule (the exact figure in their title). */
function MethodText({ text }: { text: string }) {
  const parts: ReactNode[] = [];
  let last = 0;
  for (const match of text.matchAll(DOLLARS)) {
    parts.push(text.slice(last, match.index));
    parts.push(<Usd key={match.index} value={match[1]} />);
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return <>{parts}</>;
}

export function ForecastCard({ range }: { range: string }) {
  const query = useSummary(range);
  return (
    <Card data-testid="forecast-card">
      <CardHeader>
        <CardTitle>This month</CardTitle>
        <CardDescription>So far, and the rest of the month at the last full days' pace</CardDescription>
      </CardHeader>
      <CardContent>
        <QueryView query={query} loading={<LoadingRows rows={2} label="Loading forecast" />}>
          {(summary) => (
            <div className="grid gap-3">
              <dl className="grid grid-cols-2 gap-4">
                <Figure label="Month to date" value={<Usd value={summary.forecast.month_to_date_cost_usd} />} testId="forecast-mtd" />
                <Figure
                  label="Projected for the month"
                  value={<Usd value={summary.forecast.month_projected_cost_usd} />}
                  testId="forecast-projected"
                />
              </dl>
              {/* How the figure was made, as the gateway states it: never a bare number. */}
              <p data-testid="forecast-method" className="text-xs text-muted-foreground [overflow-wrap:anywhere]">
                Projected as <MethodText text={summary.forecast.method} />.
              </p>
            </div>
          )}
        </QueryView>
      </CardContent>
    </Card>
  );
}
