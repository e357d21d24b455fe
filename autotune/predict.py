"""Predictions of an exported model on new data: ``autotune predict``.

A folder that ``autotune best --export`` wrote holds the model, which takes raw inputs, and
``metadata.json``, which says which: a CSV study's feature columns, or an array of examples.
New rows come as a CSV file with those columns (read as the study's CSV was, with its
separator; the target column may be there and is ignored), or, for a model of array data, as
an ``.npz`` file with an ``x`` array, or, for a model of images, as an image file or a folder
of them (read as training read them: resized to the study's ``image_size``, in its
``color_mode``). Each row gets its predicted label and one probability per class
(``p_<class>``), or its predicted value; an image's row starts with its file.

The file is checked before the model is loaded: a missing or an extra column, a missing value
or text where the model takes numbers is one line naming the file, the column and the line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.best import METADATA_FILE, MODEL_FILE
from autotune.data.csv_reader import MISSING
from autotune.data.preprocess import NUMBER
from autotune.data.schema import CLASSIFICATION
from autotune.data.sources import missing_examples, number
from autotune.errors import DataError, ModelError

if TYPE_CHECKING:
    import numpy as np

# What a model exported before it took raw inputs lacks.
_NEEDED = ("task", "features", "classes", "inputs")
BATCH = 1024
# Names the predicted label's column when the data had no target name (bundled data sets).
PREDICTION = "prediction"


@dataclass
class Predictions:
    """One row per input row: the predicted label and each class's probability, or the value.

    Attributes:
        header: The columns: the target's name (``prediction`` without one), then ``p_<class>``
            per class for classification.
        labels: The predicted class labels, as in the data (classification), or values.
        probabilities: One row per example, one column per class (classification); else None.
        separator: The CSV separator (the study's).
    """

    header: list[str]
    labels: list[Any]
    probabilities: np.ndarray | None = field(default=None, repr=False)
    separator: str = ","
    files: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def to_csv(self) -> str:
        """The predictions as CSV text, with a header row."""
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.separator, lineterminator="\n")
        first = ["file"] if self.files is not None else []
        writer.writerow([*first, *self.header])
        files = self.files if self.files is not None else [None] * len(self.labels)
        if self.probabilities is None:
            rows = [[_text(v)] for v in self.labels]
        else:
            pairs = zip(self.labels, self.probabilities, strict=True)
            rows = [[label, *(_text(p) for p in row)] for label, row in pairs]
        for file, row in zip(files, rows, strict=True):
            writer.writerow([file, *row] if file is not None else row)
        return out.getvalue()


def _text(value: Any) -> str:
    """A float32 as the shortest text that reads back as the same float32."""
    import numpy as np

    return str(np.float32(value))


def read_metadata(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata.json`` of a folder that ``autotune best --export`` wrote.

    Raises:
        ModelError: The folder or its files are missing, or were exported by an autotune whose
            models took encoded arrays rather than raw inputs.
    """
    folder = Path(folder)
    fix = f"Export a model there with: autotune best --study NAME --export {folder}"
    if not folder.is_dir():
        raise ModelError(f"No folder {folder}. {fix}")
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ModelError(
            f"{folder} has no {METADATA_FILE}, so it is not a model that autotune exported. {fix}"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{path}: cannot be read as JSON ({e}). {fix} --force") from e
    if not isinstance(metadata, dict):
        raise ModelError(f"{path}: holds no JSON object. {fix} --force")
    lacking = [key for key in _NEEDED if key not in metadata]
    if lacking:
        raise ModelError(
            f"{path} does not say how to call the model (it lacks {', '.join(lacking)}); a"
            f" model exported by an older autotune takes encoded arrays. Export it again:"
            f" autotune best --study {metadata.get('study', 'NAME')} --export {folder} --force"
        )
    if not (folder / MODEL_FILE).is_file():
        raise ModelError(f"{folder} has no {MODEL_FILE}. {fix} --force")
    return metadata


def read_inputs(metadata: dict[str, Any], path: str | os.PathLike[str]) -> Any:
    """The model's inputs from a new data file: a dict of columns from a CSV, or the ``x``
    array of an ``.npz`` file, as the metadata says the model takes them.

    Raises:
        DataError: The file is missing or unreadable, its columns or shape do not match the
            model's, or a value is missing or of the wrong kind.
    """
    path = Path(path)
    columns = metadata["inputs"]["kind"] == "columns"
    npz = path.suffix.lower() == ".npz"
    if not path.is_file():
        kind = "a CSV file with the feature columns" if columns else "an .npz file with an x array"
        raise DataError(f"No file {path}; give --data {kind}.")
    if columns and npz:
        raise DataError(
            f"{path}: this model takes the columns of a CSV file"
            f" ({', '.join(f['name'] for f in metadata['features'])}), not an .npz file."
        )
    if not columns and not npz:
        raise DataError(
            f"{path}: this model takes arrays; give an .npz file with an array 'x' of examples"
            f" of shape {metadata['inputs']['shape']} (numpy.savez(path, x=X))."
        )
    return _read_csv(metadata, path) if columns else _read_npz(metadata, path)


def _read_csv(metadata: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    import numpy as np

    separator = metadata["data"]["table"].get("separator", ",")
    header, body = _rows(path, separator)
    features = [f["name"] for f in metadata["features"]]
    target = metadata.get("target")
    # The study's own split column may be there too (rows of its test split, say).
    split_column = metadata["data"]["table"].get("split_column")
    named = {"the target": target, "the split column": split_column}
    ignored = {what: name for what, name in named.items() if name}
    missing = [name for name in features if name not in header]
    extra = [name for name in header if name not in features and name not in ignored.values()]
    if missing or extra:
        problems = [f"missing column(s) {', '.join(map(repr, missing))}"] if missing else []
        problems += [f"extra column(s) {', '.join(map(repr, extra))}"] if extra else []
        said = " and ".join(f"{what} '{name}'" for what, name in ignored.items())
        plural = "are" if len(ignored) > 1 else "is"
        may = f"; {said} may be there too, and {plural} ignored" if ignored else ""
        fix = "Fix the file's columns"
        if len(header) == 1:
            fix = f"Check the separator (the study's is {separator!r})"
        raise DataError(
            f"{path}: {'; '.join(problems)}. The model takes the columns"
            f" {', '.join(features)}{may}. {fix}."
        )
    if not body:
        raise DataError(f"{path}: has a header but no rows; add one row per example.")
    names = dict(zip(features, metadata["inputs"]["names"], strict=True))
    inputs: dict[str, np.ndarray] = {}
    for feature in metadata["features"]:
        name = feature["name"]
        i = header.index(name)
        values = [(line, row[i].strip()) for line, row in body]
        gaps = [(line, v) for line, v in values if v.lower() in MISSING]
        if gaps:
            raise DataError(
                f"{path}: column '{name}' has {len(gaps)} missing value(s) ({_lines(gaps)});"
                f" fill them in: the model needs every feature."
            )
        if feature["type"] == NUMBER:
            numbers = [number(v) for _, v in values]
            text = [(line, v) for (line, v), n in zip(values, numbers, strict=True) if n is None]
            if text:
                raise DataError(
                    f"{path}: column '{name}' holds values that are not numbers ({_lines(text)}),"
                    f" but the model takes numbers there."
                )
            inputs[names[name]] = np.asarray(numbers, dtype=np.float64)
        else:
            inputs[names[name]] = np.asarray([v for _, v in values], dtype=object)
    return inputs


def _rows(path: Path, separator: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV file's header and its rows, each with its line, read as the study's CSV was read:
    UTF-8 (with or without a byte order mark), the study's separator, blank rows left out."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=separator)
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot be read as CSV text in UTF-8 ({e}).") from e
    if not rows:
        raise DataError(
            f"{path}: is empty; it needs a header row of column names, then one row per example."
        )
    header = [name.strip() for name in rows[0][1]]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(
            f"{path}: the header repeats column(s) {', '.join(map(repr, repeated))}; rename them."
        )
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}."
                f" Check the separator ({separator!r}) and the quoting."
            )
    return header, rows[1:]


def _lines(found: list[tuple[int, str]]) -> str:
    shown = ", ".join(f"line {line}: {value!r}" for line, value in found[:3])
    return shown + (", ..." if len(found) > 3 else "")


def _read_npz(metadata: dict[str, Any], path: Path) -> np.ndarray:
    import numpy as np

    key = metadata["data"]["table"].get("x", "x")
    shape = tuple(metadata["inputs"]["shape"])
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(
            f"{path}: cannot be read as .npz arrays ({type(e).__name__}: {e}). Save it with"
            f" numpy.savez(path, {key}=X)."
        ) from e
    if key not in arrays:
        raise DataError(
            f"{path}: no array '{key}'; it holds: {', '.join(sorted(arrays)) or 'none'}. Save the"
            f" examples with numpy.savez(path, {key}=X)."
        )
    try:
        x = np.asarray(arrays[key], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: '{key}' must hold numbers ({e}).") from e
    if x.ndim == len(shape) and shape == (1,):
        x = x[:, None]
    if x.ndim < 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise DataError(
            f"{path}: '{key}' has shape {x.shape}, but the model takes examples of shape"
            f" {shape}: give an array of shape (n, {', '.join(map(str, shape))}) with n >= 1."
        )
    missing = missing_examples(x)
    if missing:
        raise DataError(
            f"{path}: '{key}' has missing (NaN or infinite) values in {missing}. Fill them in."
        )
    return x


def load_model(folder: str | os.PathLike[str]) -> Any:
    """The exported Keras model, loaded with ``keras.saving.load_model`` alone.

    Raises:
        ModelError: The file cannot be loaded.
    """
    import keras

    path = Path(folder) / MODEL_FILE
    try:
        return keras.saving.load_model(path)
    except Exception as e:
        raise ModelError(
            f"{path}: cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0]}). A model"
            f" with layers of your own needs their module imported first; use"
            f" keras.saving.load_model in Python."
        ) from e


def run(model: Any, inputs: Any) -> np.ndarray:
    """The model's outputs on ``inputs``, in batches, as NumPy.

    A ``tf.data`` pipeline keeps float64 columns as they are (``model.predict`` on NumPy
    arrays would round them to float32 before the model standardizes them).
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(inputs).batch(BATCH)
    return model.predict(data, verbose=0)


def predict(folder: str | os.PathLike[str], data: str | os.PathLike[str]) -> Predictions:
    """Predicts every row of a new data file with a model that ``autotune best --export``
    wrote into ``folder``.

    Args:
        folder: The exported model's folder.
        data: A CSV file with the model's feature columns, or an ``.npz`` file with an ``x``
            array for a model of array data.

    Raises:
        ModelError: The folder holds no exported model, or it cannot be loaded.
        DataError: The file does not fit the model (see :func:`read_inputs`).
    """
    import numpy as np

    from autotune.backend import setup

    metadata = read_metadata(folder)
    setup()  # TensorFlow, started without its start-up chatter
    files = None
    if metadata["inputs"]["kind"] == "images":
        files, inputs = _read_images(metadata, Path(data))
    else:
        inputs = read_inputs(metadata, data)
    outputs = run(load_model(folder), inputs)
    table = metadata["data"]["table"]
    name = metadata.get("target") or PREDICTION
    separator = table.get("separator", ",") if metadata["inputs"]["kind"] == "columns" else ","
    if metadata["task"] != CLASSIFICATION:
        return Predictions([name], [float(v) for v in outputs[:, 0]], separator=separator)
    classes = metadata["classes"]
    labels = [classes[i] for i in np.argmax(outputs, axis=1)]
    header = [name, *(f"p_{c}" for c in classes)]
    return Predictions(header, labels, outputs, separator, files)


def _read_images(metadata: dict[str, Any], path: Path) -> tuple[list[str], np.ndarray]:
    """The raw pixels of an image file, or of every image under a folder, as training read
    them (resized, in the study's color mode), and the files' names."""
    from autotune.data.images import Images, image_files

    height, width, channels = metadata["inputs"]["shape"]
    images = Images(height, width, channels)
    found = image_files(path, "autotune predict --data")
    return [str(f) for f in found], images.read(found, rescale=False)


def write(predictions: Predictions, path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Writes the predictions as CSV to ``path``, all at once.

    Raises:
        OutputError: ``path`` exists (without ``force``) or cannot be written.
    """
    from autotune import files

    files.check_target(path, force=force)
    files.write_text(path, predictions.to_csv())
