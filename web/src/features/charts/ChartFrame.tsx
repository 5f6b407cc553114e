import type { ReactElement } from "react";
import { ResponsiveContainer } from "recharts";
import { cn } from "@/lib/utils";

interface ChartFrameProps {
  label: string;
  className?: string;
  children: ReactElement;
}

/**
 * A fixed-height box whose width follows its container. `min-w-0` lets grid and flex parents
 * shrink it, so a chart never pushes the page wider than a phone's screen.
 */
export function ChartFrame({ label, className, children }: ChartFrameProps) {
  return (
    <figure aria-label={label} className={cn("h-64 w-full min-w-0", className)}>
      <ResponsiveContainer width="100%" height="100%" initialDimension={{ width: 280, height: 256 }}>
        {children}
      </ResponsiveContainer>
    </figure>
  );
}
