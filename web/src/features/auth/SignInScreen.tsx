import { useId, useState, type FormEvent } from "react";
import { ApiError } from "@/api/client";
import { useSignIn } from "@/api/hooks";
import { errorMessage } from "@/components/states";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";

function signInError(error: unknown): string {
  if (error instanceof ApiError && error.status === 401) return `That token was not accepted: ${error.message}`;
  return errorMessage(error);
}

/**
 * The token is posted once; the gateway answers with an HttpOnly session cookie. The token is
 * dropped from memory on success and never written to storage.
 */
export function SignInScreen() {
  const [token, setToken] = useState("");
  const signIn = useSignIn();
  const tokenId = useId();

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (!token.trim()) return;
    signIn.mutate(token.trim(), { onSuccess: () => setToken("") });
  }

  return (
    <main className="flex min-h-dvh items-center justify-center p-4">
      <Card className="w-full max-w-sm">
        <CardHeader className="flex-col">
          <CardTitle className="text-base">costguard · cost dashboard</CardTitle>
          <CardDescription>Sign in with an admin token.</CardDescription>
        </CardHeader>
        <CardContent>
          <form onSubmit={submit} className="grid gap-4" aria-label="Sign in">
            <div className="grid gap-1.5">
              <Label htmlFor={tokenId}>Admin token</Label>
              <Input
                id={tokenId}
                type="password"
                data-testid="signin-token"
                value={token}
                autoComplete="off"
                autoFocus
                aria-invalid={signIn.isError ? true : undefined}
                onChange={(event) => setToken(event.target.value)}
              />
            </div>
            {signIn.isError ? (
              <p role="alert" data-testid="signin-error" className="text-sm text-destructive [overflow-wrap:anywhere]">
                {signInError(signIn.error)}
              </p>
            ) : null}
            <Button type="submit" data-testid="signin-submit" disabled={signIn.isPending || token.trim() === ""}>
              {signIn.isPending ? "Signing in…" : "Sign in"}
            </Button>
          </form>
        </CardContent>
      </Card>
    </main>
  );
}
