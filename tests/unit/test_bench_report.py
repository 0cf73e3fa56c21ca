"""The benchmark's arithmetic and tables, on made-up samples (no containers, no root)."""

from __future__ import annotations

import sys

import pytest
from pyrunc_testing import REPO

sys.path.insert(0, str(REPO / "hack"))

from bench.cli import parse_args  # noqa: E402
from bench.report import markdown_table, plain_table  # noqa: E402
from bench.stats import Results, Samples  # noqa: E402


def test_summary_gives_median_and_spread_and_subtracts_an_offset() -> None:
    samples = Samples([0.010, 0.020, 0.030, 0.040, 0.100])
    plain = samples.summary()
    assert plain["median"] == pytest.approx(0.030)
    assert plain["p10"] == pytest.approx(0.014)
    assert plain["p90"] == pytest.approx(0.076)
    shifted = samples.summary(offset=0.005)
    assert shifted["median"] == pytest.approx(0.025)
    assert shifted["raw_median"] == pytest.approx(0.030)


def test_one_sample_has_no_spread_and_failures_are_counted() -> None:
    samples = Samples([0.5])
    samples.fail("exit 1: boom")
    samples.fail("exit 2: later")
    figures = samples.summary()
    assert figures["p10"] == figures["p90"] == figures["median"] == 0.5
    assert figures["failures"] == 2 and figures["error"] == "exit 1: boom"


def test_ratios_use_medians_and_the_wrapper_is_taken_off_crun_only() -> None:
    results = Results(wrapped={"crun"})
    results.wrapper_cost = 0.010
    metric = results.metric("run", "run", "run /bin/true", subtract_wrapper=True)
    metric.values = {"pyrunc": Samples([0.090]), "runc": Samples([0.030]), "crun": Samples([0.040])}
    memory = results.metric("rss", "lifecycle", "RSS", unit="KiB")
    memory.values = {"pyrunc": Samples([2048.0]), "crun": Samples([1024.0])}
    data = results.to_dict()
    assert data["run"]["ratios"] == {"pyrunc/runc": pytest.approx(3.0),
                                     "pyrunc/crun": pytest.approx(3.0)}
    assert data["rss"]["ratios"] == {"pyrunc/crun": pytest.approx(2.0)}  # no wrapper on memory


def test_tables_show_every_measure_with_units() -> None:
    results = Results(wrapped=set())
    results.metric("state", "state", "state (running)").values = {
        "pyrunc": Samples([0.017, 0.018]), "runc": Samples([0.005])}
    results.metric("init_rss", "lifecycle", "waiting init VmRSS", unit="KiB").values = {
        "pyrunc": Samples([10240.0])}
    data = {"metrics": results.to_dict(), "config": {"argv": ["-n", "2"]},
            "machine": {"date": "d", "cpus": 2, "kernel": "k", "python": "3.11",
                        "versions": {"runc": "1.1"}, "load_before": "0.1", "load_after": "0.2"}}
    table = plain_table(data)
    assert "17.5 ms (17.1–17.9 ms)" in table and "5.0 ms" in table and "10.00 MiB" in table
    markdown = markdown_table(data)
    assert "| measure | pyrunc | runc | pyrunc/runc |" in markdown
    assert "| state (running) | 17.5 ms (17.1–17.9 ms) | 5.0 ms | 3.50x |" in markdown


def test_arguments_are_checked() -> None:
    args = parse_args(["-n", "3", "--only", "run,state", "--scale", "1000,0,100"])
    assert args.only == ["run", "state"] and args.scale == [0, 100, 1000]
    with pytest.raises(SystemExit):
        parse_args(["--only", "run,bogus"])
    with pytest.raises(SystemExit):
        parse_args(["--scale", "0,many"])
