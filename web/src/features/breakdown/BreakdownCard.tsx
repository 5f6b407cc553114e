import { useState } from "react";
import { useBreakdown } from "@/api/hooks";
import type { BreakdownBy } from "@/api/types";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { BreakdownTable } from "./BreakdownTable";
import { BreakdownTabs } from "./BreakdownTabs";

/** "Where the money went": the range's cost by model, service, domain or tier. */
export function BreakdownCard({ range, className }: { range: string; className?: string }) {
  const [by, setBy] = useState<BreakdownBy>("model");
  const query = useBreakdown(by, range);
  return (
    <Card data-testid="breakdown" className={className}>
      <CardHeader>
        <CardTitle>Where the money went</CardTitle>
        <CardDescription>The cost of the range, against the period before it</CardDescription>
      </CardHeader>
      <CardContent className="grid min-w-0 gap-3">
        {/* The CSV link comes with GET /api/admin/cost/export.csv. */}
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
