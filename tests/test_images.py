"""The digits as PNG files in class folders, from the folder through run, best --export and
predict, read from disk as the trials train."""

from __future__ import annotations

import csv
import io
import re
import shutil
import sys
from pathlib import Path

from click.testing import CliRunner

from autotune.cli import cli
from autotune.data import load
from autotune.spec import load as load_spec

EXAMPLE = Path(__file__).parent.parent / "examples" / "digits_png"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_digits_as_png_files_run_export_and_predict_their_test_split(workdir: Path):
    folder = workdir / "digits_png"
    folder.mkdir()
    shutil.copy(EXAMPLE / "digits_png.toml", folder)
    sys.path.insert(0, str(EXAMPLE))
    try:
        import make_images
    finally:
        sys.path.remove(str(EXAMPLE))
    assert make_images.write(folder / "images") == 1797
    study, storage = str(folder / "digits_png.toml"), f"sqlite:///{workdir / 'png.db'}"

    ran = invoke(
        "run", "--study", study, "--storage", storage, "--n-trials", "2", "--max-epochs", "3"
    )
    assert ran.exit_code == 0, ran.output
    best = invoke("best", "--study", "digits_png", "--storage", storage, "--export", "model")
    assert best.exit_code == 0, best.output
    test_accuracy = float(re.search(r"^accuracy\s+\S+\s+(\S+)$", best.output, re.M)[1])

    predicted = invoke("predict", "--model", "model", "--data", str(folder / "images"))
    assert predicted.exit_code == 0, predicted.output
    rows = {row["file"]: row for row in csv.DictReader(io.StringIO(predicted.output))}
    assert len(rows) == 1797
    # The test split is the study's own: its files, labelled by their folders.
    dataset = load(load_spec(study).data, folder)
    right = [rows[path]["prediction"] == Path(path).parent.name for path in dataset.x_test]
    assert abs(sum(right) / len(right) - test_accuracy) < 1e-4
