"""``python -m costguard.rollup``: the service; ``... rollup --date D | --from D --to D``: one run.

The CLI form is what the Kubernetes CronJob runs: it rolls up the given dates (default:
yesterday, local), prints one line per date, and exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, timedelta

from costguard.common.db import create_pool
from costguard.common.entrypoint import load_config_or_exit, run_service
from costguard.rollup.config import RollupConfig
from costguard.rollup.runs import BadRange, Rollups, dates_between
from costguard.rollup.server import serve


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m costguard.rollup rollup")
    parser.add_argument("--date", type=date.fromisoformat)
    parser.add_argument("--from", dest="first", type=date.fromisoformat)
    parser.add_argument("--to", dest="last", type=date.fromisoformat)
    parser.add_argument(
        "--reprice", action="store_true", help="price with today's prices, not the stored ones"
    )
    args = parser.parse_args(argv)
    if args.date and (args.first or args.last):
        parser.error("give --date, or --from and --to")
    if bool(args.first) != bool(args.last):
        parser.error("--from and --to go together")
    return args


async def _rollup_once(config: RollupConfig, args: argparse.Namespace) -> int:
    if args.first:
        try:
            days = dates_between(args.first, args.last)
        except BadRange as exc:
            print(f"costguard: {exc}", file=sys.stderr)
            return 2
    else:
        days = [args.date or datetime.now(config.core.timezone).date() - timedelta(days=1)]
    pool = await create_pool(config.database_url, max_size=2)
    try:
        rollups = Rollups(pool, tz=config.core.timezone, pricing=config.pricing)
        results = await rollups.run("cli", days, reprice=args.reprice)
    finally:
        await pool.close()
    for r in results:
        line = f"{r.date}  users={r.users}  events={r.events}  cost_usd={r.cost_usd:f}"
        if args.reprice and r.previous_cost_usd is not None:
            change = r.cost_usd - r.previous_cost_usd
            line += f"  was={r.previous_cost_usd:f}  change={change:+f}"
        print(f"{line}  {r.seconds:.2f}s")
    return 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "rollup":
        args = _parse(sys.argv[2:])
        config = load_config_or_exit(RollupConfig.from_env)
        raise SystemExit(asyncio.run(_rollup_once(config, args)))
    run_service(RollupConfig.from_env, serve)


main()
