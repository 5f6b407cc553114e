import { useId, useState, type FormEvent } from "react";
import { EmptyState } from "@/components/states";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Segmented, type SegmentedOption } from "@/components/ui/segmented";
import { cn } from "@/lib/utils";
import { EpisodeBreakdown } from "./EpisodeBreakdown";
import { PodcastEpisodes } from "./PodcastEpisodes";

type EntityKind = "episode" | "podcast";

interface Lookup {
  kind: EntityKind;
  id: string;
}

// The gateway's rule for entity ids (params.entity_id).
const ENTITY_ID = /^[A-Za-z0-9_.:@-]{1,64}$/;

const KINDS: readonly SegmentedOption<EntityKind>[] = [
  { value: "episode", label: "Episode", testId: "entity-kind-episode" },
  { value: "podcast", label: "Podcast", testId: "entity-kind-podcast" },
];

export function EntityView({ className }: { className?: string }) {
  const [kind, setKind] = useState<EntityKind>("episode");
  const [text, setText] = useState("");
  const [inputError, setInputError] = useState<string | null>(null);
  const [lookup, setLookup] = useState<Lookup | null>(null);
  const inputId = useId();

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const id = text.trim();
    if (!ENTITY_ID.test(id)) {
      setInputError("1 to 64 letters, digits or _ . : @ -");
      return;
    }
    setInputError(null);
    setLookup({ kind, id });
  }

  function openEpisode(id: string) {
    setKind("episode");
    setText(id);
    setLookup({ kind: "episode", id });
  }

  return (
    <Card data-testid="entity-view" className={cn(className)}>
      <CardHeader>
        <CardTitle>Episode and podcast costs</CardTitle>
        <CardDescription>One episode's breakdown, or every episode of a podcast</CardDescription>
      </CardHeader>
      <CardContent className="grid gap-4">
        <form onSubmit={submit} noValidate className="flex flex-wrap items-end gap-2" aria-label="Look up costs">
          <Segmented label="Look up" options={KINDS} value={kind} onChange={setKind} />
          <div className="grid min-w-0 flex-1 basis-48 gap-1.5">
            <Label htmlFor={inputId} className="sr-only">
              {kind === "episode" ? "Episode id" : "Podcast id"}
            </Label>
            <Input
              id={inputId}
              data-testid="entity-id"
              value={text}
              placeholder={kind === "episode" ? "episode id, e.g. ep1" : "podcast id, e.g. pod1"}
              autoComplete="off"
              spellCheck={false}
              aria-invalid={inputError ? true : undefined}
              onChange={(event) => setText(event.target.value)}
            />
          </div>
          <Button type="submit" data-testid="entity-lookup">
            Show costs
          </Button>
          {inputError ? (
            <p role="alert" className="w-full text-xs text-destructive">
              {inputError}
            </p>
          ) : null}
        </form>
        {lookup === null ? (
          <EmptyState title="Nothing looked up yet">Enter an episode id or a podcast id.</EmptyState>
        ) : lookup.kind === "episode" ? (
          <EpisodeBreakdown key={lookup.id} episodeId={lookup.id} />
        ) : (
          <PodcastEpisodes key={lookup.id} podcastId={lookup.id} onOpenEpisode={openEpisode} />
        )}
      </CardContent>
    </Card>
  );
}
