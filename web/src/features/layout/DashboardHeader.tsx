import { useSignOut } from "@/api/hooks";
import type { Me } from "@/api/types";
import { Button } from "@/components/ui/button";
import type { Range, RangeChoice } from "@/lib/range";
import { useTheme } from "@/lib/theme";
import { RangePicker } from "./RangePicker";

interface DashboardHeaderProps {
  me: Me;
  today: string;
  range: Range;
  onRangeChange: (next: RangeChoice) => void;
}

export function DashboardHeader({ me, today, range, onRangeChange }: DashboardHeaderProps) {
  const signOut = useSignOut();
  const [theme, toggleTheme] = useTheme();
  return (
    <header className="sticky top-0 z-20 border-b bg-background/85 backdrop-blur">
      <div className="mx-auto flex w-full max-w-7xl flex-wrap items-end gap-x-3 gap-y-2 px-4 py-3">
        <div className="min-w-0 flex-1 self-center">
          <h1 className="truncate text-base font-semibold">Cost</h1>
          <p className="truncate text-xs text-muted-foreground">costguard</p>
        </div>
        {/* Keyed by the URL's range: back/forward or a preset resets the custom dates' draft. */}
        <RangePicker key={range.query} range={range} today={today} onChange={onRangeChange} />
        <div className="flex items-center gap-1">
          <Button
            variant="ghost"
            size="icon"
            onClick={toggleTheme}
            aria-label={theme === "dark" ? "Switch to light theme" : "Switch to dark theme"}
            title={theme === "dark" ? "Light theme" : "Dark theme"}
          >
            <span aria-hidden="true">{theme === "dark" ? "☀" : "☾"}</span>
          </Button>
          <Button
            variant="outline"
            size="sm"
            data-testid="signout"
            onClick={() => signOut.mutate()}
            disabled={signOut.isPending}
            title={`Signed in as ${me.name} (${me.role})`}
          >
            Sign out
          </Button>
        </div>
      </div>
    </header>
  );
}
