import { useSignOut } from "@/api/hooks";
import type { Days, Me } from "@/api/types";
import { Button } from "@/components/ui/button";
import { Segmented, type SegmentedOption } from "@/components/ui/segmented";
import { useTheme } from "@/lib/theme";

const DAY_OPTIONS: readonly SegmentedOption<Days>[] = [
  { value: 7, label: "7 days", testId: "days-7" },
  { value: 30, label: "30 days", testId: "days-30" },
];

interface DashboardHeaderProps {
  me: Me;
  days: Days;
  onDaysChange: (days: Days) => void;
}

export function DashboardHeader({ me, days, onDaysChange }: DashboardHeaderProps) {
  const signOut = useSignOut();
  const [theme, toggleTheme] = useTheme();
  return (
    <header className="sticky top-0 z-20 border-b bg-background/85 backdrop-blur">
      <div className="mx-auto flex w-full max-w-7xl flex-wrap items-center gap-x-3 gap-y-2 px-4 py-3">
        <div className="min-w-0 flex-1">
          <h1 className="truncate text-base font-semibold">Cost</h1>
          <p className="truncate text-xs text-muted-foreground">costguard</p>
        </div>
        <Segmented label="Window" options={DAY_OPTIONS} value={days} onChange={onDaysChange} />
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
