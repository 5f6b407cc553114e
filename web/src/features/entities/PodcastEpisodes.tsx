import { Usd } from "@/components/Usd";
import { ApiError } from "@/api/client";
import { usePodcastEpisodes } from "@/api/hooks";
import type { PodcastEpisodes as PodcastEpisodesData } from "@/api/types";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Button } from "@/components/ui/button";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import type { ReactNode } from "react";
import { formatCount } from "@/lib/format";

function Stat({ label, value }: { label: string; value: ReactNode }) {
  return (
    <div className="min-w-0">
      <dt className="text-xs text-muted-foreground">{label}</dt>
      <dd className="text-lg font-semibold tabular-nums [overflow-wrap:anywhere]">{value}</dd>
    </div>
  );
}

function Episodes({ data, onOpenEpisode }: { data: PodcastEpisodesData; onOpenEpisode: (id: string) => void }) {
  if (data.episodes.length === 0) {
    return <EmptyState title={`No episode costs for podcast ${data.podcast_id}`}>Nothing has been rolled up for it yet.</EmptyState>;
  }
  return (
    <div data-testid="podcast-episodes" className="grid gap-4">
      <dl className="grid grid-cols-3 gap-3">
        <Stat label="Total" value={<Usd value={data.total_cost_usd} />} />
        <Stat label="Average" value={<Usd value={data.average_cost_usd} />} />
        <Stat label="Max" value={<Usd value={data.max_cost_usd} />} />
      </dl>
      <Table>
        <TableHeader>
          <TableRow>
            <TableHead>Episode</TableHead>
            <TableHead className="text-right">Cost</TableHead>
            <TableHead className="text-right">Events</TableHead>
          </TableRow>
        </TableHeader>
        <TableBody>
          {data.episodes.map((episode) => (
            <TableRow key={episode.episode_id} data-testid="podcast-episode-row">
              <TableCell className="max-w-48 truncate">
                <Button variant="link" size="sm" className="h-auto px-0 font-mono" onClick={() => onOpenEpisode(episode.episode_id)}>
                  {episode.episode_id}
                </Button>
              </TableCell>
              <TableCell className="text-right tabular-nums"><Usd value={episode.total_cost_usd} /></TableCell>
              <TableCell className="text-right tabular-nums">{formatCount(episode.event_count)}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </div>
  );
}

export function PodcastEpisodes({ podcastId, onOpenEpisode }: { podcastId: string; onOpenEpisode: (id: string) => void }) {
  const query = usePodcastEpisodes(podcastId);
  // The gateway answers 404 for a podcast without episode costs, as it does for an episode.
  if (query.error instanceof ApiError && query.error.status === 404 && query.data === undefined) {
    return <EmptyState title={`No episode costs for podcast ${podcastId}`}>{query.error.message}</EmptyState>;
  }
  return (
    <QueryView query={query} loading={<LoadingRows rows={4} label="Loading podcast" />}>
      {(data) => <Episodes data={data} onOpenEpisode={onOpenEpisode} />}
    </QueryView>
  );
}
