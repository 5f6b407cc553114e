import { Usd } from "@/components/Usd";
import { ApiError } from "@/api/client";
import { useEpisode, useRecalculateEpisode } from "@/api/hooks";
import type { EpisodeCost } from "@/api/types";
import { QueryView } from "@/components/QueryView";
import { EmptyState, ErrorState, LoadingRows } from "@/components/states";
import { Button } from "@/components/ui/button";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatCount, formatDateTime } from "@/lib/format";

function MoneyTable({ title, entries }: { title: string; entries: Record<string, string> }) {
  const rows = Object.entries(entries);
  return (
    <div className="grid min-w-0 content-start gap-2">
      <h4 className="text-xs font-medium text-muted-foreground">{title}</h4>
      {rows.length === 0 ? (
        <p className="text-xs text-muted-foreground">None</p>
      ) : (
        <Table>
          <TableBody>
            {rows.map(([name, cost]) => (
              <TableRow key={name}>
                <TableCell className="font-mono text-xs whitespace-normal break-all">{name}</TableCell>
                <TableCell className="text-right tabular-nums"><Usd value={String(cost)} /></TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
    </div>
  );
}

function UsageTable({ usage }: { usage: Record<string, number | string> }) {
  const rows = Object.entries(usage);
  return (
    <div className="grid min-w-0 content-start gap-2">
      <h4 className="text-xs font-medium text-muted-foreground">Usage</h4>
      {rows.length === 0 ? (
        <p className="text-xs text-muted-foreground">None</p>
      ) : (
        <Table>
          <TableHeader>
            <TableRow>
              <TableHead>Metric</TableHead>
              <TableHead className="text-right">Amount</TableHead>
            </TableRow>
          </TableHeader>
          <TableBody>
            {rows.map(([name, value]) => (
              <TableRow key={name}>
                <TableCell className="font-mono text-xs whitespace-normal break-all">{name}</TableCell>
                <TableCell className="text-right tabular-nums">
                  {typeof value === "number" && !Number.isInteger(value) ? value.toLocaleString("en-US") : formatCount(value)}
                </TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
    </div>
  );
}

function Breakdown({ episode, onRecalculate, recalculating }: { episode: EpisodeCost; onRecalculate: () => void; recalculating: boolean }) {
  return (
    <div data-testid="episode-breakdown" className="grid gap-4">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div className="min-w-0">
          <p className="text-xs text-muted-foreground [overflow-wrap:anywhere]">
            Episode <span className="font-mono">{episode.entity_id}</span>
            {episode.podcast_id ? (
              <>
                {" "}
                of podcast <span className="font-mono">{episode.podcast_id}</span>
              </>
            ) : null}
          </p>
          <p data-testid="episode-total" className="text-2xl font-semibold tabular-nums">
            <Usd value={episode.total_cost_usd} />
          </p>
          <p className="text-xs text-muted-foreground">
            {formatCount(episode.event_count)} events · calculated {formatDateTime(episode.calculated_at)}
          </p>
        </div>
        <Button variant="outline" data-testid="episode-recalculate" onClick={onRecalculate} disabled={recalculating}>
          {recalculating ? "Recalculating…" : "Recalculate"}
        </Button>
      </div>
      <div className="grid gap-4 md:grid-cols-3">
        <MoneyTable title="By service" entries={episode.cost_by_service} />
        <MoneyTable title="By category" entries={episode.cost_by_category} />
        <UsageTable usage={episode.usage_metrics} />
      </div>
    </div>
  );
}

export function EpisodeBreakdown({ episodeId }: { episodeId: string }) {
  const query = useEpisode(episodeId);
  const recalculate = useRecalculateEpisode();
  if (query.error instanceof ApiError && query.error.status === 404 && query.data === undefined) {
    return <EmptyState title={`No costs for episode ${episodeId} yet`}>{query.error.message}</EmptyState>;
  }
  return (
    <div className="grid gap-3">
      {recalculate.isError ? <ErrorState error={recalculate.error} /> : null}
      <QueryView query={query} loading={<LoadingRows rows={4} label="Loading episode" />}>
        {(episode) => (
          <Breakdown
            episode={episode}
            recalculating={recalculate.isPending}
            onRecalculate={() => recalculate.mutate(episode.entity_id)}
          />
        )}
      </QueryView>
    </div>
  );
}
