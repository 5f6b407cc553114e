"""`make bench`: every benchmark, one after another, each printing its own figures.

``python -m bench --json`` prints the headline figures as one JSON object per line on
stdout (``name``, ``value``, ``unit``, ``baseline``, ``ratio``, ``goal``, ``met``) and the
tables on stderr. ``python -m bench ingest rollup`` runs only the benchmarks named.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bench import common, gateway, ingest, rollup, sdk_hot_path, throttle

BENCHMARKS: dict[str, Callable[[], None]] = {
    "sdk_hot_path": sdk_hot_path.main,
    "ingest": ingest.main,
    "throttle": throttle.main,
    "rollup": rollup.main,
    "gateway": gateway.main,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="figures as JSON lines on stdout")
    parser.add_argument("only", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(
            f"no benchmark named {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    if args.json:
        common.json_output()
    common.say("costguard benchmarks: figures from this machine, printed, never asserted")
    for name, run in BENCHMARKS.items():
        if not args.only or name in args.only:
            run()
    if args.json:
        common.print_figures()


if __name__ == "__main__":
    main()
