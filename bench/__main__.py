"""`make bench`: every benchmark, one after another, each printing its own figures."""

from __future__ import annotations

from bench import gateway, ingest, rollup, sdk_hot_path, throttle


def main() -> None:
    print("costguard benchmarks: figures from this machine, printed, never asserted")
    sdk_hot_path.main()
    ingest.main()
    throttle.main()
    rollup.main()
    gateway.main()


if __name__ == "__main__":
    main()
