"""The scale benchmark's small size, end to end (scripts/bench_scale.py): it builds a study of
synthetic trials through autotune's own space, and every command it times works on it, as a
user runs them, so that a change which breaks a command on a long study shows here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_scale_benchmark_runs_every_command_on_a_study_of_synthetic_trials(tmp_path: Path):
    size = 120
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_scale.py"), "--sizes", str(size),
         "--storages", "sqlite", "--out", str(tmp_path), "--label", "ci", "--keep", ],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "scale.json").read_text())["ci"]["results"]["sqlite"]
    figures = figures[str(size)]
    assert set(figures) == {"show", "studies", "trials", "report", "dashboard", "run"}
    # The study the benchmark built: the synthetic trials, then the four that `run` added.
    url = f"sqlite:///{tmp_path / 'scale.db'}"
    study = optuna.load_study(study_name=f"scale-{size}", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == size + 4
    built, ran = trials[:size], trials[size:]
    assert {t.state.name for t in built} == {"COMPLETE", "PRUNED"}
    assert all(t.intermediate_values and t.user_attrs["epochs"] for t in built)
    # the params come from the shipped circles space, distributions and all
    assert set(built[0].params) >= {"learning_rate", "batch_size", "optimizer"}
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in ran)
    assert all(t.user_attrs["sampling_seconds"] >= 0 for t in ran)
    assert len(figures["run"]["outside_fit"]) == 3 and min(figures["run"]["outside_fit"]) > 0
    # the table and the report the benchmark wrote are whole
    assert (tmp_path / f"scale-{size}.csv").read_text().count("\n") == size + 1
    assert figures["report"]["mb"] > 0
    assert len(figures["dashboard"]["polls"]) == 3
    assert "| `show` |" in (tmp_path / "scale-ci.md").read_text()
