import { Usd } from "@/components/Usd";
import { useSummary } from "@/api/hooks";
import type { Summary, UnpricedItem } from "@/api/types";
import { CsvLink } from "@/components/CsvLink";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Progress } from "@/components/ui/progress";
import { formatCount, formatPercent } from "@/lib/format";

function UnpricedRow({ item }: { item: UnpricedItem }) {
  return (
    <li data-testid="unpriced-row" className="grid gap-1.5">
      <div className="flex flex-wrap items-baseline justify-between gap-x-3 gap-y-0.5 text-sm">
        <code className="min-w-0 font-mono text-xs break-all">{item.item}</code>
        <span className="text-xs text-muted-foreground tabular-nums">
          <Usd value={item.cost_usd} /> · {formatPercent(item.share)} of cost · {formatCount(item.events)} events
        </span>
      </div>
      {item.reason ? (
        <p data-testid="unpriced-reason" className="text-xs text-muted-foreground break-words">
          {item.reason}
        </p>
      ) : null}
      <Progress fraction={item.share} label={`${item.item}: ${formatPercent(item.share)} of cost`} />
    </li>
  );
}

function EstimatedLine({ estimated }: { estimated: Summary["estimated"] }) {
  if (estimated.events === 0) return null;
  return (
    <p data-testid="estimated-usage" className="mb-4 text-sm text-muted-foreground">
      Estimated: {formatCount(estimated.events)} calls whose usage never arrived, priced at an estimate of
      their tokens: <Usd value={estimated.cost_usd} />, {formatPercent(estimated.share)} of cost
    </p>
  );
}

export function UnpricedModels({ range, className }: { range: string; className?: string }) {
  const query = useSummary(range);
  return (
    <Card data-testid="unpriced-models" className={className}>
      <CardHeader>
        <div className="grid min-w-0 flex-1 gap-1">
          <CardTitle>Unpriced models</CardTitle>
          <CardDescription>
            LLM models billed at the fallback price, and cost events costguard cannot price, until a price
            is added
          </CardDescription>
        </div>
        <CsvLink table="unpriced" range={range} label="the unpriced models" />
      </CardHeader>
      <CardContent>
        <QueryView query={query} loading={<LoadingRows rows={3} label="Loading unpriced models" />}>
          {(summary) => (
            <>
              <EstimatedLine estimated={summary.estimated} />
              {summary.unpriced.length === 0 ? (
                <EmptyState title="All models priced">Every model and service used has a price.</EmptyState>
              ) : (
                <ul className="grid gap-4">
                  {summary.unpriced.map((item) => (
                    <UnpricedRow key={item.item} item={item} />
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
