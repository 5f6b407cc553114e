import { useBreakdown } from "@/api/hooks";
import type { BreakdownBy } from "@/api/types";
import { CsvLink } from "@/components/CsvLink";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { navigate, useSearch, withSearch } from "@/lib/location";
import { BreakdownTable } from "./BreakdownTable";
import { BREAKDOWN_TABS, BreakdownTabs } from "./BreakdownTabs";

/** "Where the money went": the range's cost by model, service, domain or tier. */
export function BreakdownCard({ range, className }: { range: string; className?: string }) {
  // The tab is in the URL (?by=), replaced rather than pushed: a tab is not a page to go back to.
  const search = useSearch();
  const asked = new URLSearchParams(search).get("by");
  const by: BreakdownBy = BREAKDOWN_TABS.find((tab) => tab.value === asked)?.value ?? "model";
  const setBy = (next: BreakdownBy) => navigate(withSearch(window.location.search, { by: next === "model" ? undefined : next }), { replace: true });
  const query = useBreakdown(by, range);
  return (
    <Card data-testid="breakdown" className={className}>
      <CardHeader>
        <div className="grid min-w-0 gap-1">
          <CardTitle>Where the money went</CardTitle>
          <CardDescription>The cost of the range, against the period before it</CardDescription>
        </div>
        <CsvLink table="breakdown" range={range} extra={{ by }} label={`the cost by ${by}`} testId="breakdown-csv" />
      </CardHeader>
      <CardContent className="grid min-w-0 gap-3">
        <BreakdownTabs value={by} onChange={setBy} />
        <div id="breakdown-panel" role="tabpanel" aria-labelledby={`breakdown-tab-${by}`} className="min-w-0 overflow-x-auto">
          <QueryView query={query} loading={<LoadingRows rows={4} label="Loading the breakdown" />}>
            {(data) =>
              data.rows.length === 0 ? <EmptyState title="Nothing billed">No cost in this range.</EmptyState> : <BreakdownTable rows={data.rows} />
            }
          </QueryView>
        </div>
      </CardContent>
    </Card>
  );
}
