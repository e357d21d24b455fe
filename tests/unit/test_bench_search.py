"""How scripts/bench_search.py reports a full run made in several sittings: each study's runs
from the last saved file that has it, the methods of every file, and one budget only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_search.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_search", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_search"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_search"]


def saved(budget, methods, studies_seeds, command, **extra):
    runs = [
        {"study": study, "method": method, "seed": seed}
        for study, seeds in studies_seeds.items()
        for seed in range(seeds)
        for method in methods
    ]
    meta = {"budget": budget, "methods": methods, "command": command, "started": command,
            "minutes": 10.0, **extra}  # fmt: skip
    return {"meta": meta, "runs": runs}


def test_each_study_comes_from_the_last_file_that_has_it_with_every_files_methods(bench):
    old = saved(60.0, ["autotune", "autotune-sobol", "ray"], {"noisy": 5, "friedman": 2}, "a",
                relabelled="how autotune-sobol ran")  # fmt: skip
    new = saved(60.0, ["autotune", "ray"], {"moons": 5, "friedman": 5}, "b")
    runs, meta = bench.merged([old, new])
    assert {(r["study"], r["method"]) for r in runs if r["study"] == "friedman"} == {
        ("friedman", "autotune"),
        ("friedman", "ray"),
    }
    assert sum(r["study"] == "friedman" for r in runs) == 10  # 5 seeds from the later file
    assert sum(r["study"] == "noisy" for r in runs) == 15
    assert meta["studies"] == ["noisy", "moons", "friedman"]
    assert meta["methods"] == ["autotune", "autotune-sobol", "ray"]
    assert meta["relabelled"] == "how autotune-sobol ran"
    assert meta["command"] == "a`, then `b"
    assert (meta["started"], meta["minutes"]) == ("a", 20.0)


def test_a_file_whose_studies_all_come_later_is_left_out(bench):
    first = saved(60.0, ["autotune"], {"moons": 1}, "a")
    second = saved(60.0, ["autotune"], {"moons": 2}, "b")
    runs, meta = bench.merged([first, second])
    assert len(runs) == 2 and meta["command"] == "b" and meta["minutes"] == 10.0


def test_runs_of_different_budgets_are_not_merged(bench):
    with pytest.raises(SystemExit, match="differ in budget"):
        bench.merged([saved(60.0, ["autotune"], {"a": 1}, "a"),
                      saved(120.0, ["autotune"], {"b": 1}, "b")])  # fmt: skip
