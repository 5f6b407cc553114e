import { useSummary } from "@/api/hooks";
import type { Me } from "@/api/types";
import { AlertsPanel } from "@/features/alerts/AlertsPanel";
import { BreakdownCard } from "@/features/breakdown/BreakdownCard";
import { BudgetsSection } from "@/features/budgets/BudgetsSection";
import { CostByTierCard, JobsByDomainCard, TokensCard } from "@/features/charts/ChartCards";
import { tiersOf } from "@/features/charts/CostByTierChart";
import { DecisionsPanel } from "@/features/decisions/DecisionsPanel";
import { EntityView } from "@/features/entities/EntityView";
import { DashboardHeader } from "@/features/layout/DashboardHeader";
import { WindowLine } from "@/features/layout/WindowLine";
import { CapsToday } from "@/features/summary/CapsToday";
import { ForecastCard } from "@/features/summary/ForecastCard";
import { SummaryCards } from "@/features/summary/SummaryCards";
import { UnpricedModels } from "@/features/unpriced/UnpricedModels";
import { UserPage } from "@/features/user/UserPage";
import { TopUsers } from "@/features/users/TopUsersTable";
import { useSearch } from "@/lib/location";
import { localToday, useRange } from "@/lib/range";

/** One page: stacked on a phone, a grid from tablet width up. Every grid child has min-w-0. */
export function Dashboard({ me }: { me: Me }) {
  const today = me.today ?? localToday();
  const [range, setRange] = useRange(today);
  const userId = new URLSearchParams(useSearch()).get("user");
  const summary = useSummary(range.query);
  // Budgets cap real tiers: the unattributed bucket (cost events without a user) is not one.
  const tiers = summary.data ? tiersOf(summary.data.series.cost_by_tier).filter((t) => t !== "unattributed") : [];
  return (
    <div className="min-h-dvh">
      <DashboardHeader me={me} today={today} range={range} onRangeChange={setRange} />
      <main className="mx-auto grid w-full max-w-7xl min-w-0 gap-4 p-4 pt-3">
        <WindowLine range={range.query} />
        {userId ? (
          <UserPage key={userId} userId={userId} range={range.query} />
        ) : (
          <>
            <SummaryCards range={range.query} />
            <div className="grid min-w-0 gap-4 md:grid-cols-2">
              <CapsToday range={range.query} />
              <ForecastCard range={range.query} />
            </div>
            <div className="grid min-w-0 gap-4 md:grid-cols-2 xl:grid-cols-3">
              <CostByTierCard range={range.query} />
              <JobsByDomainCard range={range.query} />
              <TokensCard range={range.query} className="md:col-span-2 xl:col-span-1" />
            </div>
            <BreakdownCard range={range.query} />
            <div className="grid min-w-0 gap-4 lg:grid-cols-3">
              <TopUsers range={range.query} className="lg:col-span-2" />
              <UnpricedModels range={range.query} />
            </div>
            <div className="grid min-w-0 gap-4 xl:grid-cols-2">
              <DecisionsPanel range={range.query} tiers={tiers} />
              <AlertsPanel range={range.query} />
            </div>
            <BudgetsSection tiers={tiers} />
            <EntityView />
          </>
        )}
      </main>
    </div>
  );
}
