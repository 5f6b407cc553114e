import { QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactElement } from "react";
import { createQueryClient } from "@/api/queryClient";
import { App } from "@/App";

/** Renders with a fresh QueryClient (no retries, so error states show at once). */
export function renderWithClient(ui: ReactElement) {
  const client = createQueryClient({ retry: false });
  const user = userEvent.setup();
  const result = render(<QueryClientProvider client={client}>{ui}</QueryClientProvider>);
  return { ...result, client, user };
}

export function renderApp() {
  return renderWithClient(<App />);
}
