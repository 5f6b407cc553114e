import { useSummary } from "@/api/hooks";
import type { Me } from "@/api/types";
import { BreakdownCard } from "@/features/breakdown/BreakdownCard";
import { BudgetsSection } from "@/features/budgets/BudgetsSection";
import { CostByTierCard, JobsByDomainCard, TokensCard } from "@/features/charts/ChartCards";
import { tiersOf } from "@/features/charts/CostByTierChart";
import { EntityView } from "@/features/entities/EntityView";
import { DashboardHeader } from "@/features/layout/DashboardHeader";
import { WindowLine } from "@/features/layout/WindowLine";
import { CapsToday } from "@/features/summary/CapsToday";
import { ForecastCard } from "@/features/summary/ForecastCard";
import { SummaryCards } from "@/features/summary/SummaryCards";
import { UnpricedModels } from "@/features/unpriced/UnpricedModels";
import { TopUsers } from "@/features/users/TopUsersTable";
import { useDays } from "@/lib/days";

/** One page: stacked on a phone, a grid from tablet width up. Every grid child has min-w-0. */
export function Dashboard({ me }: { me: Me }) {
  const [days, setDays] = useDays();
  const summary = useSummary(days);
  // Budgets cap real tiers: the unattributed bucket (cost events without a user) is not one.
  const tiers = summary.data ? tiersOf(summary.data.series.cost_by_tier).filter((t) => t !== "unattributed") : [];
  return (
    <div className="min-h-dvh">
      <DashboardHeader me={me} days={days} onDaysChange={setDays} />
      <main className="mx-auto grid w-full max-w-7xl min-w-0 gap-4 p-4 pt-3">
        <WindowLine days={days} />
        <SummaryCards days={days} />
        <div className="grid min-w-0 gap-4 md:grid-cols-2">
          <CapsToday days={days} />
          <ForecastCard days={days} />
        </div>
        <div className="grid min-w-0 gap-4 md:grid-cols-2 xl:grid-cols-3">
          <CostByTierCard days={days} />
          <JobsByDomainCard days={days} />
          <TokensCard days={days} className="md:col-span-2 xl:col-span-1" />
        </div>
        <BreakdownCard range={`days=${days}`} />
        <div className="grid min-w-0 gap-4 lg:grid-cols-3">
          <TopUsers days={days} className="lg:col-span-2" />
          <UnpricedModels days={days} />
        </div>
        <BudgetsSection tiers={tiers} />
        <EntityView />
      </main>
    </div>
  );
}
