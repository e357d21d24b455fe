"""``autotune predict``: an exported model on new raw rows, and the same model in plain Keras."""

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from autotune import data
from autotune.cli import cli
from autotune.data.sources import LOADERS

EXAMPLE = Path(__file__).parent.parent / "examples" / "churn"
FEATURES = "tenure_months, monthly_charges, support_calls, plan, contract, paperless_billing"

# Loads the exported model in a process that never imports autotune, and calls it with a dict
# of raw columns, as metadata.json describes them.
PLAIN_KERAS = """
import csv, json, sys
import numpy as np
import keras
folder, rows = sys.argv[1:]
meta = json.load(open(folder + "/metadata.json"))
model = keras.saving.load_model(folder + "/model.keras")
with open(rows, newline="") as f:
    table = list(csv.DictReader(f))
inputs = {}
for feature, name in zip(meta["features"], meta["inputs"]["names"]):
    values = [row[feature["name"]] for row in table]
    number = feature["type"] == "number"
    inputs[name] = np.array([float(v) for v in values]) if number else np.array(values)
probabilities = model(inputs).numpy()
assert "autotune" not in sys.modules
print(json.dumps({"classes": meta["classes"], "probabilities": probabilities.tolist()}))
"""


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@dataclass
class Churn:
    folder: Path
    model: Path
    header: list[str]
    test_rows: list[list[str]]
    test_accuracy: str  # as `autotune best` printed it

    def write(self, name: str, columns: list[str], rows: list[list[str]] | None = None) -> Path:
        """Writes the test rows' ``columns`` (in that order) to a CSV file."""
        path = self.folder / name
        index = [self.header.index(c) for c in columns]
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows([row[i] for i in index] for row in rows or self.test_rows)
        return path


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Churn:
    """The churn example searched briefly, its best model exported, and its test split's raw
    rows (the loader's own split indices into the CSV)."""
    folder = tmp_path_factory.mktemp("churn")
    shutil.copytree(EXAMPLE, folder / "churn", ignore=shutil.ignore_patterns("__pycache__"))
    url = f"sqlite:///{folder / 'churn.db'}"
    study = folder / "churn" / "churn.toml"
    ran = invoke("run", "--study", study, "--storage", url, "--n-trials", 2, "--max-epochs", 4)
    assert ran.exit_code == 0, ran.output
    model = folder / "model"
    exported = invoke("best", "--study", "churn", "--storage", url, "--export", model)
    assert exported.exit_code == 0, exported.output
    accuracy = next(line for line in exported.output.splitlines() if line.startswith("accuracy"))

    meta = json.loads((model / "metadata.json").read_text())
    dataset = data.load(meta["data"]["table"], folder / "churn")
    with (folder / "churn" / "churn.csv").open(newline="") as f:
        header, *rows = csv.reader(f)
    test_rows = [rows[i] for i in dataset.rows["test"]]
    return Churn(folder, model, header, test_rows, accuracy.split()[2])


def test_predict_on_the_raw_test_rows_reproduces_the_test_accuracy_of_best(churn: Churn):
    rows = churn.write("test.csv", churn.header[1:])  # all but customer_id; the target stays
    out = churn.folder / "predictions.csv"
    result = invoke("predict", "--model", churn.model, "--data", rows, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote 80 predictions to {out}.\n"

    with out.open(newline="") as f:
        header, *predicted = csv.reader(f)
    assert header == ["churned", "p_no", "p_yes"]
    assert len(predicted) == len(churn.test_rows) == 80
    probabilities = np.array([[float(p) for p in row[1:]] for row in predicted])
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert [row[0] for row in predicted] == [["no", "yes"][i] for i in probabilities.argmax(1)]
    truth = [row[churn.header.index("churned")] for row in churn.test_rows]
    accuracy = np.mean([row[0] == label for row, label in zip(predicted, truth, strict=True)])
    assert f"{accuracy:.4f}" == churn.test_accuracy
    meta = json.loads((churn.model / "metadata.json").read_text())
    assert accuracy == pytest.approx(meta["metrics"]["test"]["accuracy"], abs=1e-6)


def test_plain_keras_without_autotune_predicts_what_autotune_predict_prints(churn: Churn):
    # without the target, in another column order, and to standard output
    columns = [c for c in reversed(churn.header) if c not in ("customer_id", "churned")]
    rows = churn.write("new.csv", columns)
    printed = invoke("predict", "--model", churn.model, "--data", rows)
    assert printed.exit_code == 0, printed.output
    header, *predicted = csv.reader(printed.stdout.splitlines())
    assert header == ["churned", "p_no", "p_yes"] and len(predicted) == 80

    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, str(churn.model), str(rows)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr[-2000:]
    result = json.loads(plain.stdout.splitlines()[-1])
    assert result["classes"] == ["no", "yes"]
    expected = np.array([[float(p) for p in row[1:]] for row in predicted])
    assert np.abs(np.array(result["probabilities"]) - expected).max() < 1e-5


def test_the_metadata_says_how_to_call_the_model(churn: Churn):
    meta = json.loads((churn.model / "metadata.json").read_text())
    assert meta["task"] == "classification" and meta["target"] == "churned"
    assert meta["classes"] == ["no", "yes"]
    assert meta["features"] == [
        {"name": "tenure_months", "type": "number"},
        {"name": "monthly_charges", "type": "number"},
        {"name": "support_calls", "type": "number"},
        {"name": "plan", "type": "text"},
        {"name": "contract", "type": "text"},
        {"name": "paperless_billing", "type": "text"},
    ]
    assert meta["inputs"]["kind"] == "columns"
    assert meta["inputs"]["names"] == [f["name"] for f in meta["features"]]
    assert meta["outputs"]["columns"] == ["no", "yes"]
    plan = meta["preprocessing"]["columns"][3]
    assert plan == {"name": "plan", "type": "text", "categories": ["basic", "premium", "standard"]}
    assert {"study", "trial", "params", "metrics", "data", "versions"} <= set(meta)


@pytest.mark.parametrize(
    "columns, message",
    [
        (
            ["tenure_months", "monthly_charges", "support_calls", "paperless_billing"],
            "missing column(s) 'plan', 'contract'.",
        ),
        (
            ["customer_id", *FEATURES.split(", "), "churned"],
            "extra column(s) 'customer_id'.",
        ),
        (
            ["customer_id", *FEATURES.split(", ")[1:]],
            "missing column(s) 'tenure_months'; extra column(s) 'customer_id'.",
        ),
    ],
)
def test_columns_that_do_not_match_the_features_are_named(churn: Churn, columns, message):
    rows = churn.write("bad.csv", columns)
    out = churn.folder / "never.csv"
    result = invoke("predict", "--model", churn.model, "--data", rows, "--out", out)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {rows}: {message} The model takes the columns {FEATURES}; the target"
        f" 'churned' may be there too, and is ignored. Fix the file's columns.\n"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("plan", "", "column 'plan' has 1 missing value(s) (line 3: ''); fill them in: the model needs every feature."),
        ("tenure_months", "NA", "column 'tenure_months' has 1 missing value(s) (line 3: 'NA'); fill them in"),
        ("support_calls", "many", "column 'support_calls' holds values that are not numbers (line 3: 'many'), but the model takes numbers there."),
    ],
)  # fmt: skip
def test_a_missing_or_wrong_value_is_one_line_naming_the_line(churn: Churn, column, value, message):
    rows = [list(row) for row in churn.test_rows]
    rows[1][churn.header.index(column)] = value
    path = churn.write("values.csv", churn.header[1:], rows)
    result = invoke("predict", "--model", churn.model, "--data", path)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {path}: {message}")
    assert len(result.output.splitlines()) == 1


def test_a_folder_without_metadata_is_refused_with_the_fix(churn: Churn):
    folder = churn.folder / "churn"  # a folder, but no exported model
    rows = churn.write("rows.csv", churn.header[1:])
    result = invoke("predict", "--model", folder, "--data", rows)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {folder} has no metadata.json, so it is not a model that autotune exported."
        f" Export a model there with: autotune best --study NAME --export {folder}\n"
    )
    missing = invoke("predict", "--model", churn.folder / "nowhere", "--data", rows)
    assert missing.exit_code == 1 and missing.output.startswith("Error: No folder ")


def test_an_existing_out_file_is_kept_without_force(churn: Churn):
    rows = churn.write("rows.csv", churn.header[1:])
    out = churn.folder / "kept.csv"
    out.write_text("mine\n")
    result = invoke("predict", "--model", churn.model, "--data", rows, "--out", out)
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: {out} exists already. Use --force to replace it, or choose another.\n"
    )
    assert out.read_text() == "mine\n"
    forced = invoke("predict", "--model", churn.model, "--data", rows, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_text().startswith("churned,p_no,p_yes\n")


def test_a_model_of_columns_refuses_an_npz_file(churn: Churn):
    path = churn.folder / "x.npz"
    np.savez(path, x=np.zeros((2, 6)))
    result = invoke("predict", "--model", churn.model, "--data", path)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path}: this model takes the columns of a CSV file ({FEATURES}), not an .npz"
        f" file.\n"
    )


def test_a_model_of_arrays_predicts_an_npz_files_x(finished_study: str, tmp_path: Path):
    model = tmp_path / "circles"
    exported = invoke("best", "--study", "tiny", "--storage", finished_study, "--export", model)
    assert exported.exit_code == 0, exported.output
    meta = json.loads((model / "metadata.json").read_text())
    table = meta["data"]["table"]
    dataset = data.load(table)
    x = LOADERS["circles"](table["seed"])[0][dataset.rows["test"]]
    np.savez(tmp_path / "new.npz", x=x)

    out = tmp_path / "predictions.csv"
    result = invoke("predict", "--model", model, "--data", tmp_path / "new.npz", "--out", out)
    assert result.exit_code == 0, result.output
    with out.open(newline="") as f:
        header, *predicted = csv.reader(f)
    assert header == ["prediction", "p_0", "p_1"]
    accuracy = np.mean([int(row[0]) == y for row, y in zip(predicted, dataset.y_test, strict=True)])
    assert accuracy == pytest.approx(meta["metrics"]["test"]["accuracy"], abs=1e-6)

    np.savez(tmp_path / "wide.npz", x=np.zeros((3, 5)))
    wide = invoke("predict", "--model", model, "--data", tmp_path / "wide.npz")
    assert wide.exit_code == 1
    assert wide.output == (
        f"Error: {tmp_path / 'wide.npz'}: 'x' has shape (3, 5), but the model takes examples of"
        f" shape (2,): give an array of shape (n, 2) with n >= 1.\n"
    )
    as_csv = invoke("predict", "--model", model, "--data", out)
    assert as_csv.exit_code == 1
    assert as_csv.output.startswith(f"Error: {out}: this model takes arrays; give an .npz file")
