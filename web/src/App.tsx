import { useMe } from "@/api/hooks";
import { ErrorState } from "@/components/states";
import { Skeleton } from "@/components/ui/skeleton";
import { SignInScreen } from "@/features/auth/SignInScreen";
import { Dashboard } from "@/features/Dashboard";

/** Shows the sign-in screen whenever there is no session (any 401 sets `me` to null). */
export function App() {
  const me = useMe();
  if (me.isPending) {
    return (
      <div role="status" aria-label="Checking the session" className="mx-auto grid max-w-7xl gap-4 p-4">
        <Skeleton className="h-10 w-full" />
        <Skeleton className="h-32 w-full" />
      </div>
    );
  }
  if (me.isError) {
    return (
      <main className="mx-auto max-w-md p-4">
        <ErrorState error={me.error} onRetry={() => void me.refetch()} />
      </main>
    );
  }
  if (me.data === null) return <SignInScreen />;
  return <Dashboard me={me.data} />;
}
