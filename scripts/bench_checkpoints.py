"""Checkpoints on disk and in time: a 50-trial study with a checkpoint after every epoch, and
the same study with none, side by side.

For each setting, the study runs in a fresh folder through autotune's own API; a thread
samples the artifact folder's size every 50 ms, for its peak during the run; after the run the
folder holds what is kept (the best model, and nothing of the trials that ended). The model
size is that of the kept ``best-trial-N.keras``.

    python scripts/bench_checkpoints.py                    # writes benchmarks/checkpoints.md
    python scripts/bench_checkpoints.py --study circles --n-trials 20
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

from autotune import checkpoints, runner
from autotune.spec import resolve


def size(folder: Path) -> int:
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    except FileNotFoundError:
        return 0


def one(study: str, n_trials: int, max_epochs: int, every: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        spec = resolve(study).with_overrides(
            name=f"{study}-{every}", n_trials=n_trials, max_epochs=max_epochs,
            checkpoint_every=every,
        )  # fmt: skip
        artifacts = checkpoints.folder(spec, url)
        peak = 0
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, size(artifacts))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        study_ = runner.run(spec, storage=url, echo=None, gpus="none")
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        kept = study_.user_attrs.get(checkpoints.BEST_MODEL_ATTR)
        model = (artifacts / kept["artifact"]).stat().st_size if kept else 0
        return {
            "seconds": seconds,
            "peak": peak,
            "after": size(artifacts),
            "model": model,
            "files_after": len(os.listdir(artifacts)) if artifacts.is_dir() else 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="digits")
    parser.add_argument("--n-trials", type=int, default=50)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/checkpoints.md")
    args = parser.parse_args()
    rows = {}
    for every in (1, 0):
        rows[every] = one(args.study, args.n_trials, args.max_epochs, every)
        print(every, rows[every], flush=True)
    on, off = rows[1], rows[0]
    kib = 1024
    text = "\n".join(
        [
            "# Checkpoints: disk and time",
            "",
            f"`python scripts/bench_checkpoints.py --study {args.study} --n-trials {args.n_trials}"
            f" --max-epochs {args.max_epochs}` on {platform.node()} ({os.cpu_count()} cores),"
            " one run per setting, side by side.",
            "",
            "| checkpoint_every | wall time | artifacts at peak | artifacts after | files after"
            " | one model |",
            "|---|---|---|---|---|---|",
            f"| 1 (every epoch) | {on['seconds']:.1f} s | {on['peak'] / kib:.0f} KiB"
            f" | {on['after'] / kib:.0f} KiB | {on['files_after']} | {on['model'] / kib:.0f} KiB |",
            f"| 0 (never) | {off['seconds']:.1f} s | {off['peak'] / kib:.0f} KiB"
            f" | {off['after'] / kib:.0f} KiB | {off['files_after']} | {off['model'] / kib:.0f} KiB |",
            "",
            f"After the study the folder holds {on['after'] / max(on['model'], 1):.1f} models' worth"
            " (the best trial's model; every trial's checkpoint went when the trial ended). At"
            f" its peak, with one trial running, it held {on['peak'] / max(on['model'], 1):.1f}"
            " models' worth (a checkpoint holds the optimizer's state too, and a new best"
            " model is written before the old one goes). Checkpointing every epoch cost"
            f" {on['seconds'] / off['seconds']:.2f}x the wall time of none (one run each; a"
            " noisy, shared machine).",
            "",
        ]
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
