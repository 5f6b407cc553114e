"""``python -m costguard.rollup serve``: the service; ``... rollup --date D | --from D --to D``:
one run; ``... retention``: delete raw events past ``RETENTION_DAYS`` once.

A sub-command is required, so that no mistyped command line (``--help``, a forgotten
argument) ever starts a server. The CLI forms are what the Kubernetes CronJob runs:
``rollup`` rolls up the given dates (default: yesterday, local), prints one line per date,
and exits non-zero on failure (2 for a bad range or a date past the retention horizon);
``retention`` prints one line per table.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta

from costguard.common.db import create_pool
from costguard.common.entrypoint import SETTINGS_DOC, load_config_or_exit, run_or_exit
from costguard.common.money import round_usd
from costguard.common.probe import ensure_reachable
from costguard.rollup.config import RollupConfig
from costguard.rollup.retention import PastRetention, prune_raw_events
from costguard.rollup.runs import BadRange, Rollups, dates_between
from costguard.rollup.server import serve

_SETTINGS = (
    f"Settings are environment variables (DATABASE_URL, COSTGUARD_TIMEZONE, RETENTION_DAYS, "
    f"...), described in {SETTINGS_DOC}."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m costguard.rollup", epilog=_SETTINGS)
    commands = parser.add_subparsers(dest="command", metavar="{serve,rollup,retention}")
    commands.add_parser(
        "serve",
        help="run the rollup gRPC service until SIGTERM or SIGINT",
        description="Runs the rollup gRPC service (costguard.v1.RollupService), its "
        "scheduler (ROLLUP_SCHEDULER) and retention, until SIGTERM or SIGINT.",
        epilog=_SETTINGS + " GRPC_LISTEN is the address it binds (default 127.0.0.1:50053).",
    )
    rollup = commands.add_parser(
        "rollup",
        help="roll up dates once and exit (default: yesterday)",
        description="Rolls up the given dates (default: yesterday in COSTGUARD_TIMEZONE), "
        "prints one line per date and exits.",
        epilog=_SETTINGS,
    )
    rollup.add_argument("--date", type=date.fromisoformat)
    rollup.add_argument("--from", dest="first", type=date.fromisoformat)
    rollup.add_argument("--to", dest="last", type=date.fromisoformat)
    rollup.add_argument(
        "--reprice", action="store_true", help="price with today's prices, not the stored ones"
    )
    retention = commands.add_parser(
        "retention",
        help="delete raw events past RETENTION_DAYS once and exit",
        description="Deletes raw events of rolled-up dates older than RETENTION_DAYS, in "
        "batches, prints one line per table and exits.",
        epilog=_SETTINGS,
    )
    retention.add_argument("--batch-size", type=int, default=5000, help="rows per DELETE")
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        print(
            "\npython -m costguard.rollup: give a command (serve runs the service)", file=sys.stderr
        )
        raise SystemExit(2)
    if args.command == "rollup":
        if args.date and (args.first or args.last):
            parser.error("give --date, or --from and --to")
        if bool(args.first) != bool(args.last):
            parser.error("--from and --to go together")
    if args.command == "retention" and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
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
    await ensure_reachable(database_url=config.database_url)
    pool = await create_pool(config.database_url, max_size=2)
    try:
        rollups = Rollups(
            pool,
            tz=config.core.timezone,
            pricing=config.pricing,
            retention_days=config.retention_days,
        )
        await rollups.keep_partitions()
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


async def _retention_once(config: RollupConfig, args: argparse.Namespace) -> int:
    await ensure_reachable(database_url=config.database_url)
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
    args = _parse(sys.argv[1:])
    config = load_config_or_exit(RollupConfig.from_env)
    if args.command == "serve":
        run_or_exit(serve(config))
    elif args.command == "rollup":
        raise SystemExit(run_or_exit(_rollup_once(config, args)))
    else:
        raise SystemExit(run_or_exit(_retention_once(config, args)))


main()
