"""`python -m bench --json`: each headline figure as one JSON object per line."""

from __future__ import annotations

import json
import sys

import pytest

from bench import common


def test_a_figure_with_a_baseline_is_judged_on_its_ratio() -> None:
    recorded = common.figure("ingest_vs_copy", 70_000, "events/s", baseline=100_000, goal=">= 0.7")
    line = json.loads(recorded.as_json())
    assert line == {
        "name": "ingest_vs_copy",
        "value": 70_000,
        "unit": "events/s",
        "baseline": 100_000,
        "ratio": 0.7,
        "goal": ">= 0.7",
        "met": True,
    }
    assert common.Figure("x", 69_999, "events/s", 100_000, ">= 0.7").met is False


def test_a_figure_without_a_baseline_is_judged_on_its_value() -> None:
    recorded = common.Figure("users_30d_p99_ms", 51.5, "ms", None, "<= 50")
    line = json.loads(recorded.as_json())
    assert (line["ratio"], line["baseline"], line["met"]) == (None, None, False)
    assert common.Figure("users_30d_p99_ms", 12.0, "ms", None, "<= 50").met is True
    assert common.Figure("no_goal", 1.0, "s", None, None).met is None


@pytest.mark.parametrize("goal", ["0.7", "=> 0.7", ">= seven", ">="])
def test_a_goal_that_is_not_an_operator_and_a_number_is_refused(goal: str) -> None:
    with pytest.raises(ValueError, match="goal"):
        common.figure("x", 1.0, "s", goal=goal)


def test_json_mode_keeps_stdout_for_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    recorded_before = len(common.FIGURES)
    common.json_output()
    try:
        common.report("a table", [("row", "1 s")])
        common.figure("rollup_vs_scan", 2.0, "s", baseline=1.0, goal="<= 2")
        common.print_figures()
    finally:
        common.table_output(sys.stdout)
        del common.FIGURES[recorded_before:]
    out, err = capsys.readouterr()
    assert "a table" in err
    assert "a table" not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["name"] == "rollup_vs_scan"
    assert lines[-1]["met"] is True
