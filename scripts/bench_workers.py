"""Throughput of local workers: finished trials per minute with 1 and 2 workers, per storage.

Runs the shipped circles study end to end, as a user would (``autotune run --study circles
--workers N --storage URL`` in a fresh process, on a fresh study), for every combination of
storage and worker count, repeated; the combinations of one repeat run back to back so that
their ratios are measured side by side. Prints a markdown table and writes it, with the
command that made it, to ``benchmarks/workers.md``.

Example:

    python scripts/bench_workers.py --trials 20 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna

STORAGES = {
    "sqlite": None,  # a fresh file per run, made below
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
}


def one_run(storage: str, workers: int, trials: int, folder: Path) -> dict[str, float]:
    """Runs a fresh circles study once; returns its wall time, trials and epochs."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    url = STORAGES[storage] or f"sqlite:///{folder / (name + '.db')}"
    spec_path = folder / f"{name}.toml"
    text = (Path(__file__).parents[1] / "autotune" / "studies" / "circles.toml").read_text()
    spec_path.write_text(text.replace('name = "circles"', f'name = "{name}"'))
    command = [
        sys.executable,
        "-m",
        "autotune",
        "run",
        "--study",
        str(spec_path),
        "--n-trials",
        str(trials),
        "--workers",
        str(workers),
    ]
    start = time.perf_counter()
    subprocess.run(
        command, env={**os.environ, "AUTOTUNE_STORAGE": url}, check=True, stdout=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=name, storage=url)
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    epochs = sum(t.user_attrs.get("epochs", 0) for t in done)
    optuna.delete_study(study_name=name, storage=url)
    return {"seconds": seconds, "trials": len(done), "epochs": epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per study")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storages", default=",".join(STORAGES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/workers.md"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storages = args.storages.split(",")

    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    log: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for storage in storages:
                for workers in (1, 2):
                    result = one_run(storage, workers, args.trials, Path(folder))
                    rows.setdefault((storage, workers), []).append(result)
                    log.append(
                        f"repeat {repeat + 1}: {storage:<10} {workers} worker(s):"
                        f" {result['trials']} trials, {result['epochs']} epochs"
                        f" in {result['seconds']:.1f} s"
                    )
                    print(log[-1], flush=True)

    def per_minute(result: dict[str, float], key: str) -> float:
        return result[key] / result["seconds"] * 60

    lines = [
        "| storage | workers | trials/min (median) | epochs/min (median) | speed-up vs 1 worker"
        " (median of side-by-side ratios) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for storage in storages:
        for workers in (1, 2):
            runs = rows[(storage, workers)]
            ratios = [
                per_minute(r, "trials") / per_minute(b, "trials")
                for r, b in zip(runs, rows[(storage, 1)], strict=False)
            ]
            lines.append(
                f"| {storage} | {workers} | {statistics.median(per_minute(r, 'trials') for r in runs):.1f}"
                f" | {statistics.median(per_minute(r, 'epochs') for r in runs):.0f}"
                f" | {statistics.median(ratios):.2f}x |"
            )
    table = "\n".join(lines)
    print(table)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# Local workers: trials per minute\n\n"
        f"The shipped circles study ({args.trials} trials per study: TPE, Hyperband, early"
        " stopping), run end to end by `autotune run --workers N` in a fresh process on a fresh"
        f" study, {args.repeats} repeats; each repeat runs every row back to back. Wall time"
        " includes starting the worker processes and importing TensorFlow.\n\n"
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python"
        f" {platform.python_version()}.\n\n"
        f"Command: `{command}`\n\n{table}\n\nEvery run:\n\n```\n" + "\n".join(log) + "\n```\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
