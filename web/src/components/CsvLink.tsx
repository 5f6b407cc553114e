import { exportCsvUrl } from "@/api/hooks";
import type { ExportTable } from "@/api/types";
import { cn } from "@/lib/utils";

interface CsvLinkProps {
  table: ExportTable;
  /** The range's query ("days=7" or "from=...&to=..."). */
  range: string;
  extra?: Record<string, string | undefined>;
  /** What the table is, for the link's accessible name: "Download <label> as CSV". */
  label: string;
  testId?: string;
  className?: string;
}

/** A plain download link to the same table as CSV (the session is a cookie, so a link is enough). */
export function CsvLink({ table, range, extra, label, testId, className }: CsvLinkProps) {
  return (
    <a
      href={exportCsvUrl(table, range, extra)}
      download
      data-testid={testId ?? `csv-${table}`}
      aria-label={`Download ${label} as CSV`}
      className={cn(
        "inline-flex h-7 shrink-0 items-center rounded-md border bg-background px-2.5 text-xs font-medium whitespace-nowrap outline-none hover:bg-accent hover:text-accent-foreground focus-visible:ring-[3px] focus-visible:ring-ring/50",
        className,
      )}
    >
      CSV
    </a>
  );
}
