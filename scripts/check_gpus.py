"""On a machine with GPUs: two local workers, each on its own GPU (or sharing the one there is,
with memory growth on), checked from what each trial recorded.

Runs ``autotune run --workers 2 --gpus auto`` on the circles study in a fresh folder, then
reads every trial's ``worker`` and ``device`` attributes: each worker must have trained all
its trials on one device, a GPU; with two GPUs or more, the two workers on different GPUs.
``nvidia-smi`` (when there) gives the memory each GPU held at the end of the run's check.

    python scripts/check_gpus.py                      # writes benchmarks/gpus.md
    python scripts/check_gpus.py --out $OUT/gpus.md
"""

from __future__ import annotations

import argparse
import collections
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/gpus.md")
    parser.add_argument("--n-trials", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="autotune-gpus-"))
    url = f"sqlite:///{folder / 'gpus.db'}"
    smi = shutil.which("nvidia-smi")
    gpus = (
        subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.strip().splitlines()
        if smi
        else []
    )
    command = [
        sys.executable, "-m", "autotune", "run", "--study", "circles", "--storage", url,
        "--n-trials", str(args.n_trials), "--max-epochs", "5", "--workers", "2", "--gpus", "auto",
        "--trials-per-gpu", "2" if len(gpus) < 2 else "1",
    ]  # fmt: skip
    start = time.time()
    run = subprocess.run(command, capture_output=True, text=True, cwd=folder)
    seconds = time.time() - start
    lines = [
        "# Two workers, one GPU each",
        "",
        f"`python scripts/check_gpus.py` on {platform.node()}: {len(gpus)} GPU(s)"
        f" {'; '.join(gpus) or '(nvidia-smi found none)'}; `{' '.join(command[2:])}`;"
        f" exit {run.returncode} in {seconds:.0f} s.",
        "",
    ]
    ok = run.returncode == 0
    if ok:
        study = optuna.load_study(study_name="circles", storage=url)
        by_worker: dict[int, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        for trial in study.trials:
            if "worker" in trial.user_attrs:
                by_worker[trial.user_attrs["worker"]][trial.user_attrs.get("device", "?")] += 1
        lines += ["| worker | trials by device |", "|---|---|"]
        lines += [f"| {w} | {dict(c)} |" for w, c in sorted(by_worker.items())]
        one_each = all(len(c) == 1 and next(iter(c)).startswith("GPU") for c in by_worker.values())
        apart = len(gpus) < 2 or len({next(iter(c)) for c in by_worker.values()}) == 2
        ok = len(by_worker) == 2 and one_each and apart
        lines += ["", f"Each worker on one GPU{' of its own' if len(gpus) > 1 else ''}: {ok}."]
    else:
        lines += ["```", run.stdout[-3000:], run.stderr[-3000:], "```"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
