import type { ReactNode } from "react";
import { useSummary } from "@/api/hooks";
import type { Summary } from "@/api/types";
import { CsvLink } from "@/components/CsvLink";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingBlock } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { cn } from "@/lib/utils";
import { CostByTierChart, hasCost } from "./CostByTierChart";
import { JobsByDomainChart } from "./JobsByDomainChart";
import { PartialDayNote } from "./PartialDay";
import { TokensChart, hasTokens } from "./TokensChart";

interface SummaryChartCardProps {
  range: string;
  testId: string;
  title: string;
  description: string;
  className?: string;
  /** Beside the title, e.g. the table's CSV link. */
  action?: ReactNode;
  render: (summary: Summary) => ReactNode;
}

function SummaryChartCard({ range, testId, title, description, className, action, render }: SummaryChartCardProps) {
  const query = useSummary(range);
  return (
    <Card data-testid={testId} className={className}>
      <CardHeader>
        <div className="grid min-w-0 gap-1">
          <CardTitle>{title}</CardTitle>
          <CardDescription>{description}</CardDescription>
        </div>
        {action}
      </CardHeader>
      <CardContent>
        <QueryView query={query} loading={<LoadingBlock className="h-64" label={`Loading ${title}`} />}>
          {render}
        </QueryView>
      </CardContent>
    </Card>
  );
}

const EMPTY_CLASS = "flex h-64 flex-col items-center justify-center";

export function CostByTierCard({ range, className }: { range: string; className?: string }) {
  return (
    <SummaryChartCard
      range={range}
      testId="chart-cost-by-tier"
      title="Cost per day by tier"
      description="USD, stacked"
      className={className}
      action={<CsvLink table="cost_by_day" range={range} label="the cost per day by tier" />}
      render={(summary) =>
        hasCost(summary.series.cost_by_tier) ? (
          <>
            <CostByTierChart rows={summary.series.cost_by_tier} partialDate={summary.partial_date ?? undefined} />
            {summary.partial_date ? <PartialDayNote date={summary.partial_date} /> : null}
          </>
        ) : (
          <EmptyState title="No cost recorded" className={EMPTY_CLASS}>
            Nothing was billed in this range.
          </EmptyState>
        )
      }
    />
  );
}

export function JobsByDomainCard({ range, className }: { range: string; className?: string }) {
  return (
    <SummaryChartCard
      range={range}
      testId="chart-jobs-by-domain"
      title="Jobs and queue wait by domain"
      description="Jobs (left axis), average and p95 queue wait in ms (right axis)"
      className={className}
      render={(summary) =>
        summary.series.jobs_by_domain.length > 0 ? (
          <JobsByDomainChart rows={summary.series.jobs_by_domain} />
        ) : (
          <EmptyState title="No jobs" className={EMPTY_CLASS}>
            No job ran in this range.
          </EmptyState>
        )
      }
    />
  );
}

export function TokensCard({ range, className }: { range: string; className?: string }) {
  return (
    <SummaryChartCard
      range={range}
      testId="chart-tokens"
      title="LLM tokens per day"
      description="Tokens in and out (left axis), cache hit-rate (right axis)"
      className={cn(className)}
      render={(summary) =>
        hasTokens(summary.series.tokens) ? (
          <>
            <TokensChart rows={summary.series.tokens} partialDate={summary.partial_date ?? undefined} />
            {summary.partial_date ? <PartialDayNote date={summary.partial_date} /> : null}
          </>
        ) : (
          <EmptyState title="No LLM tokens" className={EMPTY_CLASS}>
            No LLM call was recorded in this range.
          </EmptyState>
        )
      }
    />
  );
}
