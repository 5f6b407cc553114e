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
                Projected as {summary.forecast.method}.
              </p>
            </div>
          )}
        </QueryView>
      </CardContent>
    </Card>
  );
}
