import { Usd } from "@/components/Usd";
import { TOP_USERS_LIMIT, useTopUsers } from "@/api/hooks";
import type { TopUser } from "@/api/types";
import { CsvLink } from "@/components/CsvLink";
import { QueryView } from "@/components/QueryView";
import { EmptyState, LoadingRows } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatCount } from "@/lib/format";
import { followInPage, useSearch, withSearch } from "@/lib/location";

/** The user's page: this URL with ?user=, so the range stays and a new tab opens the same page. */
function UserLink({ userId }: { userId: string }) {
  const search = withSearch(useSearch(), { user: userId });
  return (
    <a
      href={search}
      onClick={followInPage(search)}
      data-testid="top-users-link"
      title={`${userId}: open the user's page`}
      className="rounded-sm text-primary underline-offset-4 outline-none hover:underline focus-visible:ring-[3px] focus-visible:ring-ring/50"
    >
      {userId}
    </a>
  );
}

function UserRow({ user }: { user: TopUser }) {
  return (
    <TableRow data-testid="top-users-row">
      <TableCell className="max-w-40 truncate font-mono text-xs">
        <UserLink userId={user.user_id} />
      </TableCell>
      <TableCell>
        <Badge variant="secondary">{user.tier}</Badge>
      </TableCell>
      <TableCell className="text-right font-medium tabular-nums">
        <Usd value={user.cost_usd} />
      </TableCell>
      <TableCell className="text-right tabular-nums">{formatCount(user.jobs)}</TableCell>
      <TableCell className="text-right tabular-nums">{formatCount(user.ai_calls)}</TableCell>
      <TableCell className="text-right tabular-nums">{formatCount(user.tokens_in)}</TableCell>
      <TableCell className="text-right tabular-nums">{formatCount(user.tokens_out)}</TableCell>
    </TableRow>
  );
}

function UsersTable({ users }: { users: readonly TopUser[] }) {
  return (
    <Table data-testid="top-users-table">
      <TableHeader>
        <TableRow>
          <TableHead>User</TableHead>
          <TableHead>Tier</TableHead>
          <TableHead className="text-right">Cost</TableHead>
          <TableHead className="text-right">Jobs</TableHead>
          <TableHead className="text-right">AI calls</TableHead>
          <TableHead className="text-right">Tokens in</TableHead>
          <TableHead className="text-right">Tokens out</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {users.map((user) => (
          <UserRow key={user.user_id} user={user} />
        ))}
      </TableBody>
    </Table>
  );
}

export function TopUsers({ range, className }: { range: string; className?: string }) {
  const query = useTopUsers(range);
  return (
    <Card data-testid="top-users" className={className}>
      <CardHeader>
        <div className="grid min-w-0 gap-1">
          <CardTitle>Top users by cost</CardTitle>
          <CardDescription>Top {TOP_USERS_LIMIT} in the range; a user opens their page</CardDescription>
        </div>
        <CsvLink table="top_users" range={range} extra={{ limit: String(TOP_USERS_LIMIT) }} label="the top users" />
      </CardHeader>
      <CardContent>
        <QueryView query={query} loading={<LoadingRows rows={5} label="Loading top users" />}>
          {(data) =>
            data.users.length === 0 ? (
              <EmptyState title="No users yet">No user spent anything in this range.</EmptyState>
            ) : (
              <UsersTable users={data.users} />
            )
          }
        </QueryView>
      </CardContent>
    </Card>
  );
}
