"""``python -m costguard.rollup``: the service; ``... rollup --date D | --from D --to D``: one run;
``... retention``: delete raw events past ``RETENTION_DAYS`` once.

The CLI forms are what the Kubernetes CronJob runs: ``rollup`` rolls up the given dates
(default: yesterday, local), prints one line per date, and exits non-zero on failure (2 for
a bad range or a date past the retention horizon); ``retention`` prints one line per table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, timedelta

from costguard.common.db import create_pool
from costguard.common.entrypoint import load_config_or_exit, run_service
from costguard.common.money import round_usd
from costguard.rollup.config import RollupConfig
from costguard.rollup.retention import PastRetention, prune_raw_events
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
        rollups = Rollups(
            pool,
            tz=config.core.timezone,
            pricing=config.pricing,
            retention_days=config.retention_days,
        )
        results = await rollups.run("cli", days, reprice=args.reprice)
    except PastRetention as exc:
        print(f"costguard: {exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()
    for r in results:
        # Stored exact, shown rounded once (the change too, from the exact figures).
        cost = round_usd(r.cost_usd)
        line = f"{r.date}  users={r.users}  events={r.events}  cost_usd={cost:f}"
        if args.reprice and r.previous_cost_usd is not None:
            change = round_usd(r.cost_usd - r.previous_cost_usd)
            line += f"  was={round_usd(r.previous_cost_usd):f}  change={change:+f}"
        print(f"{line}  {r.seconds:.2f}s")
    return 0


async def _retention_once(config: RollupConfig, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m costguard.rollup retention")
    parser.add_argument("--batch-size", type=int, default=5000, help="rows per DELETE")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    pool = await create_pool(config.database_url, max_size=2)
    try:
        pruned = await prune_raw_events(
            pool,
            retention_days=config.retention_days,
            tz=config.core.timezone,
            batch_size=args.batch_size,
        )
    finally:
        await pool.close()
    if pruned is None:
        print("retention is off (RETENTION_DAYS=0)")
        return 0
    print(f"horizon {pruned.horizon}: events of earlier rolled-up dates deleted")
    for table, deleted in pruned.deleted.items():
        print(f"{table}  deleted={deleted}  kept={pruned.kept[table]}")
    return 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "retention":
        config = load_config_or_exit(RollupConfig.from_env)
        raise SystemExit(asyncio.run(_retention_once(config, sys.argv[2:])))
    if len(sys.argv) > 1 and sys.argv[1] == "rollup":
        args = _parse(sys.argv[2:])
        config = load_config_or_exit(RollupConfig.from_env)
        raise SystemExit(asyncio.run(_rollup_once(config, args)))
    run_service(RollupConfig.from_env, serve)


main()
