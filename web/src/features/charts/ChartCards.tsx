import type { ReactNode } from "react";
import { useSummary } from "@/api/hooks";
import type { Days, Summary } from "@/api/types";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingBlock } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { cn } from "@/lib/utils";
import { CostByTierChart, hasCost } from "./CostByTierChart";
import { JobsByDomainChart } from "./JobsByDomainChart";
import { PartialDayNote } from "./PartialDay";
import { TokensChart, hasTokens } from "./TokensChart";

interface SummaryChartCardProps {
  days: Days;
  testId: string;
  title: string;
  description: string;
  className?: string;
  render: (summary: Summary) => ReactNode;
}

function SummaryChartCard({ days, testId, title, description, className, render }: SummaryChartCardProps) {
  const query = useSummary(days);
  return (
    <Card data-testid={testId} className={className}>
      <CardHeader>
        <CardTitle>{title}</CardTitle>
        <CardDescription>{description}</CardDescription>
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

export function CostByTierCard({ days, className }: { days: Days; className?: string }) {
  return (
    <SummaryChartCard
      days={days}
      testId="chart-cost-by-tier"
      title="Cost per day by tier"
      description="USD, stacked"
      className={className}
      render={(summary) =>
        hasCost(summary.series.cost_by_tier) ? (
          <>
            <CostByTierChart rows={summary.series.cost_by_tier} partialDate={summary.partial_date} />
            <PartialDayNote date={summary.partial_date} />
          </>
        ) : (
          <EmptyState title="No cost recorded" className={EMPTY_CLASS}>
            Nothing was billed in the last {summary.days} days.
          </EmptyState>
        )
      }
    />
  );
}

export function JobsByDomainCard({ days, className }: { days: Days; className?: string }) {
  return (
    <SummaryChartCard
      days={days}
      testId="chart-jobs-by-domain"
      title="Jobs and queue wait by domain"
      description="Jobs (left axis), average and p95 queue wait in ms (right axis)"
      className={className}
      render={(summary) =>
        summary.series.jobs_by_domain.length > 0 ? (
          <JobsByDomainChart rows={summary.series.jobs_by_domain} />
        ) : (
          <EmptyState title="No jobs" className={EMPTY_CLASS}>
            No job ran in the last {summary.days} days.
          </EmptyState>
        )
      }
    />
  );
}

export function TokensCard({ days, className }: { days: Days; className?: string }) {
  return (
    <SummaryChartCard
      days={days}
      testId="chart-tokens"
      title="LLM tokens per day"
      description="Tokens in and out (left axis), cache hit-rate (right axis)"
      className={cn(className)}
      render={(summary) =>
        hasTokens(summary.series.tokens) ? (
          <>
            <TokensChart rows={summary.series.tokens} partialDate={summary.partial_date} />
            <PartialDayNote date={summary.partial_date} />
          </>
        ) : (
          <EmptyState title="No LLM tokens" className={EMPTY_CLASS}>
            No LLM call was recorded in the last {summary.days} days.
          </EmptyState>
        )
      }
    />
  );
}
