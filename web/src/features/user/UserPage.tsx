import type { ReactNode } from "react";
import { ApiError } from "@/api/client";
import { useUserDetail } from "@/api/hooks";
import type { ExportTable, UserDetail, UserTotals } from "@/api/types";
import { CsvLink } from "@/components/CsvLink";
import { QueryView } from "@/components/QueryView";
import { EmptyState, ErrorState, LoadingRows } from "@/components/states";
import { Usd } from "@/components/Usd";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Progress } from "@/components/ui/progress";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { CapAmount, METRIC_LABELS } from "@/features/alerts/AlertsPanel";
import { PartialDayNote } from "@/features/charts/PartialDay";
import { formatChange, formatCount, formatDateTime, formatDay, formatPercent } from "@/lib/format";
import { followInPage, useSearch, withSearch } from "@/lib/location";
import { cn } from "@/lib/utils";
import { UserDayChart } from "./UserDayChart";

interface SectionProps {
  testId: string;
  title: string;
  description?: string;
  csv?: { table: ExportTable; label: string };
  range: string;
  userId: string;
  className?: string;
  children: ReactNode;
}

function Section({ testId, title, description, csv, range, userId, className, children }: SectionProps) {
  return (
    <Card data-testid={testId} className={className}>
      <CardHeader>
        <div className="grid min-w-0 gap-1">
          <CardTitle>{title}</CardTitle>
          {description ? <CardDescription>{description}</CardDescription> : null}
        </div>
        {csv ? <CsvLink table={csv.table} range={range} extra={{ user: userId }} label={csv.label} /> : null}
      </CardHeader>
      <CardContent className="grid min-w-0 gap-3">{children}</CardContent>
    </Card>
  );
}

const FIGURES: readonly { key: keyof UserTotals; label: string }[] = [
  { key: "cost_usd", label: "Cost" },
  { key: "jobs", label: "Jobs" },
  { key: "ai_calls", label: "AI calls" },
  { key: "tokens_in", label: "Tokens in" },
  { key: "tokens_out", label: "Tokens out" },
];

function Figure({ detail, figure }: { detail: UserDetail; figure: (typeof FIGURES)[number] }) {
  const value = detail.totals[figure.key];
  const previous = detail.previous_totals[figure.key];
  const money = figure.key === "cost_usd";
  return (
    <div className="min-w-0 rounded-xl border bg-card p-3 shadow-sm">
      <dt className="text-xs text-muted-foreground">{figure.label}</dt>
      <dd data-testid={`user-${figure.key}`} className="text-xl font-semibold tabular-nums [overflow-wrap:anywhere]">
        {money ? <Usd value={String(value)} /> : formatCount(value)}
      </dd>
      <dd className="text-xs text-muted-foreground tabular-nums">
        previous: {money ? <Usd value={String(previous)} /> : formatCount(previous)}
        {money ? (
          <span data-testid="user-cost-change" className={cn("ml-1", (detail.change.cost_usd ?? 0) > 0 && "text-warning")}>
            · {formatChange(detail.change.cost_usd)}
          </span>
        ) : null}
      </dd>
    </div>
  );
}

function DaysTable({ detail }: { detail: UserDetail }) {
  return (
    <Table data-testid="user-days-table">
      <TableHeader>
        <TableRow>
          <TableHead>Day</TableHead>
          <TableHead className="text-right">Cost</TableHead>
          <TableHead className="text-right">Jobs</TableHead>
          <TableHead className="text-right">AI calls</TableHead>
          <TableHead className="text-right">Tokens in</TableHead>
          <TableHead className="text-right">Tokens out</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {[...detail.days_series].reverse().map((row) => (
          <TableRow key={row.date} data-testid="user-day-row" data-date={row.date}>
            <TableCell>
              {formatDay(row.date)}
              {row.date === detail.partial_date ? (
                <Badge variant="warning" className="ml-2">
                  today so far
                </Badge>
              ) : null}
            </TableCell>
            <TableCell className="text-right tabular-nums">
              <Usd value={row.cost_usd} />
            </TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.jobs)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.ai_calls)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.tokens_in)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.tokens_out)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function ModelsTable({ detail }: { detail: UserDetail }) {
  if (detail.by_model.length === 0) return <EmptyState title="No LLM calls">No LLM call in this range.</EmptyState>;
  return (
    <Table data-testid="user-models-table">
      <TableHeader>
        <TableRow>
          <TableHead>Model</TableHead>
          <TableHead className="text-right">Cost</TableHead>
          <TableHead className="text-right">Tokens in</TableHead>
          <TableHead className="text-right">Tokens out</TableHead>
          <TableHead className="text-right">Calls</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.by_model.map((row) => (
          <TableRow key={row.key} data-testid="user-model-row">
            <TableCell className="max-w-48 truncate" title={row.key}>
              {row.key}
            </TableCell>
            <TableCell className="text-right tabular-nums">
              <Usd value={row.cost_usd} />
            </TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.tokens_in)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.tokens_out)}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.calls)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function ServicesTable({ detail }: { detail: UserDetail }) {
  if (detail.by_service.length === 0) return <EmptyState title="No cost events">No cost event in this range.</EmptyState>;
  return (
    <Table data-testid="user-services-table">
      <TableHeader>
        <TableRow>
          <TableHead>Service</TableHead>
          <TableHead className="text-right">Cost</TableHead>
          <TableHead className="text-right">Events</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.by_service.map((row) => (
          <TableRow key={row.key} data-testid="user-service-row">
            <TableCell className="max-w-48 truncate" title={row.key}>
              {row.key}
            </TableCell>
            <TableCell className="text-right tabular-nums">
              <Usd value={row.cost_usd} />
            </TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.events)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function EventsTable({ detail }: { detail: UserDetail }) {
  if (detail.recent_events.length === 0) return <EmptyState title="No events">Nothing recorded in this range.</EmptyState>;
  return (
    <Table data-testid="user-events-table">
      <TableHeader>
        <TableRow>
          <TableHead>At</TableHead>
          <TableHead>Kind</TableHead>
          <TableHead>Name</TableHead>
          <TableHead className="text-right">Cost</TableHead>
          <TableHead>Detail</TableHead>
          <TableHead>Outcome</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.recent_events.map((event) => (
          <TableRow key={`${event.kind}/${event.event_id}`} data-testid="user-event-row">
            <TableCell className="tabular-nums">{formatDateTime(event.at)}</TableCell>
            <TableCell>
              <Badge variant="secondary">{event.kind}</Badge>
            </TableCell>
            <TableCell className="max-w-48 truncate" title={event.name}>
              {event.name}
            </TableCell>
            <TableCell className="text-right tabular-nums">
              {event.cost_usd === null ? <span title="Not priced yet: its day has not been rolled up">—</span> : <Usd value={event.cost_usd} />}
              {event.price_note ? (
                <span data-testid="user-event-price-note" className="block text-xs text-muted-foreground">
                  {event.price_note}
                </span>
              ) : null}
            </TableCell>
            <TableCell className="max-w-56 truncate text-xs text-muted-foreground" title={event.detail}>
              {event.detail}
            </TableCell>
            <TableCell>{event.success ? <Badge variant="success">ok</Badge> : <Badge variant="destructive">failed</Badge>}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function Caps({ detail }: { detail: UserDetail }) {
  if (detail.caps.length === 0) return <EmptyState title="No caps apply">No global, tier or user cap applies to this user.</EmptyState>;
  return (
    <ul className="grid gap-4">
      {detail.caps.map((cap) => {
        const label = `${cap.scope} · ${METRIC_LABELS[cap.metric] ?? cap.metric}`;
        return (
          <li key={`${cap.scope}/${cap.metric}`} data-testid="user-cap-row" className="grid gap-1.5">
            <div className="flex flex-wrap items-baseline justify-between gap-x-3 gap-y-0.5 text-sm">
              <span className="min-w-0 font-medium [overflow-wrap:anywhere]">{label}</span>
              <span className="text-xs text-muted-foreground tabular-nums">
                <CapAmount metric={cap.metric} value={cap.used} /> / <CapAmount metric={cap.metric} value={cap.cap} /> ·{" "}
                {formatPercent(cap.fraction)}
              </span>
            </div>
            <Progress fraction={cap.fraction} label={`${label}: ${formatPercent(cap.fraction)} of the cap used today`} />
          </li>
        );
      })}
    </ul>
  );
}

function DecisionsTable({ detail }: { detail: UserDetail }) {
  if (detail.decisions.length === 0) return <EmptyState title="No decisions">The throttle answered no check for this user in this range.</EmptyState>;
  return (
    <Table data-testid="user-decisions-table">
      <TableHeader>
        <TableRow>
          <TableHead>Day</TableHead>
          <TableHead>Tier</TableHead>
          <TableHead>Action</TableHead>
          <TableHead className="text-right">Decisions</TableHead>
          <TableHead>Last reason</TableHead>
          <TableHead>Last at</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {detail.decisions.map((row) => (
          <TableRow key={`${row.date}/${row.tier}/${row.action}`} data-testid="user-decision-row">
            <TableCell>{formatDay(row.date)}</TableCell>
            <TableCell>{row.tier}</TableCell>
            <TableCell>{row.action}</TableCell>
            <TableCell className="text-right tabular-nums">{formatCount(row.decisions)}</TableCell>
            <TableCell className="max-w-56 truncate text-xs text-muted-foreground" title={row.last_reason}>
              {row.last_reason}
            </TableCell>
            <TableCell className="tabular-nums">{formatDateTime(row.last_at)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function Detail({ detail, range }: { detail: UserDetail; range: string }) {
  const common = { range, userId: detail.user_id };
  return (
    <>
      <dl data-testid="user-totals" className="grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-5">
        {FIGURES.map((figure) => (
          <Figure key={figure.key} detail={detail} figure={figure} />
        ))}
      </dl>
      <Section testId="user-days" title="Per day" description="Cost and use each day of the range" csv={{ table: "user_days", label: "the user's days" }} {...common}>
        <UserDayChart detail={detail} />
        {detail.partial_date ? <PartialDayNote date={detail.partial_date} /> : null}
        <DaysTable detail={detail} />
      </Section>
      <div className="grid min-w-0 gap-4 lg:grid-cols-2">
        <Section testId="user-models" title="By model" csv={{ table: "user_models", label: "the user's cost by model" }} {...common}>
          <ModelsTable detail={detail} />
        </Section>
        <Section testId="user-services" title="By service" csv={{ table: "user_services", label: "the user's cost by service" }} {...common}>
          <ServicesTable detail={detail} />
        </Section>
      </div>
      <div className="grid min-w-0 gap-4 lg:grid-cols-2">
        <Section testId="user-caps" title="Caps today" description="Today's use against each cap that applies" {...common}>
          <Caps detail={detail} />
        </Section>
        <Section testId="user-decisions" title="Throttle decisions" description="Newest first" {...common}>
          <DecisionsTable detail={detail} />
        </Section>
      </div>
      <Section testId="user-events" title="Recent events" description="The newest 50 in the range" csv={{ table: "user_events", label: "the user's recent events" }} {...common}>
        <EventsTable detail={detail} />
      </Section>
    </>
  );
}

/** One user's costs in the range (?user=<id>); the back link keeps the range. */
export function UserPage({ userId, range }: { userId: string; range: string }) {
  const query = useUserDetail(userId, range);
  const back = withSearch(useSearch(), { user: undefined });
  const missing = query.error instanceof ApiError && query.error.status === 404;
  return (
    <div data-testid="user-page" className="grid min-w-0 gap-4">
      <div className="flex min-w-0 flex-wrap items-center gap-x-3 gap-y-1">
        <a
          href={back || window.location.pathname}
          onClick={followInPage(back)}
          data-testid="user-back"
          className="rounded-sm text-sm text-primary underline-offset-4 outline-none hover:underline focus-visible:ring-[3px] focus-visible:ring-ring/50"
        >
          ← Dashboard
        </a>
        <h2 className="min-w-0 font-mono text-lg font-semibold [overflow-wrap:anywhere]" data-testid="user-id">
          {userId}
        </h2>
        {query.data ? <Badge variant="secondary">{query.data.tier}</Badge> : null}
      </div>
      {missing ? (
        <div data-testid="user-missing">
          <EmptyState title="No such user">
            Nothing was ever recorded for <code className="font-mono">{userId}</code>. Check the id, or go back to the dashboard.
          </EmptyState>
        </div>
      ) : query.isError && query.data === undefined ? (
        <ErrorState error={query.error} onRetry={() => void query.refetch()} />
      ) : (
        <QueryView query={query} loading={<LoadingRows rows={6} label="Loading the user" />}>
          {(detail) => <Detail detail={detail} range={range} />}
        </QueryView>
      )}
    </div>
  );
}
