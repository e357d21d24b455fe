"""Memory and time of loading a CSV file, with the pyarrow reader and the csv-module one before it.

Generates a CSV file in a temporary folder (by default 200,000 rows: 20 number columns, 2 text
columns and a class target, about 32 MB), then loads it with ``autotune.data.load`` in a fresh
process per run, alternating the two readers: the one in the working tree and the one of
``--old`` (the last revision before the pyarrow reader, by default), put in its place. Each
run reports the peak resident memory over the process's memory after its imports (numpy,
scikit-learn, pyarrow, autotune.data; ``ru_maxrss``, which counts what pyarrow allocates
outside Python too) and the load's wall time. The figures are the median of the runs, and the
ratio of the peak to the numeric size of what the load returns: x of all splits and y.

Prints the figures and writes them, with the command, to ``benchmarks/csv.md``.

Example:

    python scripts/bench_csv.py --rows 200000 --runs 5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = {"source": "csv", "path": "data.csv", "target": "label", "task": "classification"}


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """20 number columns of various scales, 2 text columns and a yes/no target."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 20)) * rng.uniform(1, 1000, size=20)
    city = np.array(["north", "south", "east", "west", "harbour"])[rng.integers(0, 5, rows)]
    kind = np.array(["flat", "house", "villa"])[rng.integers(0, 3, rows)]
    label = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    with path.open("w") as f:
        f.write(",".join([f"x{i}" for i in range(20)] + ["city", "kind", "label"]) + "\n")
        for i in range(rows):
            numbers = ",".join(f"{v:.5g}" for v in x[i])
            f.write(f"{numbers},{city[i]},{kind[i]},{label[i]}\n")


def old_reader(revision: str, folder: Path) -> Path:
    """The csv_reader.py of ``revision``, written into ``folder``."""
    source = subprocess.run(
        ["git", "show", f"{revision}:autotune/data/csv_reader.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = folder / "old_csv_reader.py"
    path.write_text(source)
    return path


def default_old() -> str:
    """The parent of the first commit that read CSV files with pyarrow."""
    first = subprocess.run(
        [
            "git",
            "log",
            "--reverse",
            "--format=%H",
            "-G",
            "pyarrow",
            "--",
            "autotune/data/csv_reader.py",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[0]
    return f"{first[:12]}^"


def use_old_reader(old: Path | None) -> None:
    """Loads go through the old reader's Table from now on."""
    from autotune import data

    assert old is not None
    spec = importlib.util.spec_from_file_location("old_csv_reader", old)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Table(module.Table):
        """The old reader's table, whose numbers (float64) have no shift."""

        def encode(self, *splits):
            return (*super().encode(*splits), None)

    data.Table = Table


def child(reader: str, folder: Path, old: Path | None) -> None:
    """One load in this process; prints its figures as JSON."""
    import gc
    import resource
    import time

    import numpy as np
    import pyarrow  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.preprocessing  # noqa: F401

    from autotune import data

    if reader == "old":
        use_old_reader(old)
    table = data.validate(TABLE, "bench")
    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if reader == "stages":
        print(json.dumps(stages(table, folder, base)))
        return
    start = time.perf_counter()
    ds = data.load(table, folder)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    arrays = [ds.x_train, ds.x_val, ds.x_test, ds.y_train, ds.y_val, ds.y_test]
    out = {
        "peak_mb": (peak - base) / 1024,
        "baseline_mb": base / 1024,
        "seconds": seconds,
        "numeric_mb": sum(a.nbytes for a in arrays) / 2**20,
        "shape": list(ds.x_train.shape),
    }
    if reader == "compare":  # the new reader's arrays against the old one's
        use_old_reader(old)
        data._load_cached.cache_clear()
        before = data.load(table, folder)
        out["same_features"] = before.features == ds.features and before.classes == ds.classes
        out["same_y"] = all(
            np.array_equal(getattr(before, k), getattr(ds, k))
            for k in ("y_train", "y_val", "y_test")
        )
        out["max_abs_diff_x"] = float(
            max(
                np.abs(getattr(before, k) - getattr(ds, k)).max()
                for k in ("x_train", "x_val", "x_test")
            )
        )
    print(json.dumps(out))


def stages(table: dict, folder: Path, base: int) -> dict:
    """The peak memory over imports after each step of a load with the new reader, in MB."""
    import resource

    from autotune.data.csv_reader import Table
    from autotune.data.preprocess import split, standardize

    def peak() -> float:
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024

    read = Table.read(folder / "data.csv", table, "classification", "bench")
    out = {"read": peak()}
    rows = split(read.y, "classification", table, "bench")
    out["split"] = peak()
    x_train, x_val, x_test, _, numeric, shift = read.encode(*rows)
    out["encode"] = peak()
    standardize(x_train, x_val, x_test, numeric, shift)
    out["standardize"] = peak()
    return out


def run(reader: str, folder: Path, old: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        reader,
        "--folder",
        str(folder),
        "--old-file",
        str(old),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--old", default=None, help="git revision of the reader to compare with")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "csv.md")
    parser.add_argument(
        "--child", choices=["old", "new", "compare", "stages"], help=argparse.SUPPRESS
    )
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--old-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.old_file)
        return

    import pyarrow

    old = args.old or default_old()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder / "data.csv", args.rows)
        size_mb = (folder / "data.csv").stat().st_size / 2**20
        old_file = old_reader(old, folder)
        results: dict[str, list[dict]] = {"old": [], "new": []}
        for i in range(args.runs):
            for reader in ("old", "new"):
                results[reader].append(run(reader, folder, old_file))
                r = results[reader][-1]
                print(
                    f"run {i + 1} {reader}: peak {r['peak_mb']:.1f} MB, {r['seconds']:.2f} s",
                    flush=True,
                )
        compare = run("compare", folder, old_file)
        steps = run("stages", folder, old_file)

    numeric = results["new"][0]["numeric_mb"]
    rows = []
    for reader, label in (("old", f"csv module ({old})"), ("new", "pyarrow")):
        peak = statistics.median(r["peak_mb"] for r in results[reader])
        seconds = statistics.median(r["seconds"] for r in results[reader])
        baseline = statistics.median(r["baseline_mb"] for r in results[reader])
        runs = ", ".join(f"{r['peak_mb']:.0f}" for r in results[reader])
        rows.append(
            f"| {label} | {peak:.1f} MB ({runs}) | {peak / numeric:.2f}x | {seconds:.2f} s | {baseline:.0f} MB |"
        )
    command = "python scripts/bench_csv.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    new_peak = statistics.median(r["peak_mb"] for r in results["new"])
    verdict = (
        "meets the target of at most 3x"
        if new_peak <= 3 * numeric
        else f"misses the target of at most 3x ({3 * numeric:.1f} MB)"
    )
    text = f"""# Loading a CSV file: peak memory and time

Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, pyarrow {pyarrow.__version__}.

Command: `{command.strip()}`

The file: {args.rows:,} rows of 20 number columns, 2 text columns (5 and 3 categories) and a
yes/no target, {size_mb:.1f} MB, generated by the script. What the load returns (x of the three
splits, float32, {results["new"][0]["shape"][1]} columns, and y): {numeric:.1f} MB.

Each figure is the median of {args.runs} runs, each in a fresh process, the two readers
alternating: the peak resident memory (`ru_maxrss`) of `autotune.data.load` over the process's
memory after its imports (numpy, scikit-learn, pyarrow, autotune.data), its ratio to the
numeric size above, and the load's wall time (reading, checking, splitting, encoding,
standardizing).

| reader | peak over imports (each run) | peak / numeric size | time | memory after imports |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

The pyarrow reader {verdict}: {new_peak:.1f} MB is {new_peak / numeric:.2f}x the numeric size.
The peak over imports after each step of one load with it: {", ".join(f"{k} {v:.0f} MB" for k, v in steps.items())}
(reading holds the number columns as float32, each less a shift, and the text as codes;
splitting is scikit-learn's stratified split, whose index lists are for a moment lists of
Python objects; encoding fills the matrices as it frees those columns;
`autotune.data.preprocess.standardize` works in place, one number column at a time).

Same data set from both readers: features and classes {"equal" if compare.get("same_features") else "DIFFER"}, y {"equal" if compare.get("same_y") else "DIFFERS"}; x differs by at most {compare["max_abs_diff_x"]:.2g} (standardized units), as the
numbers are now rounded to float32 (less their column's shift) before standardizing rather
than after.
"""
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
