"""The ``[data]`` table of a study file: its keys by kind of source, defaults and checks.

Only the table's form is checked here; the files themselves are read when the study runs
(:func:`autotune.data.load`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune import references
from autotune.errors import StudySpecError

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# The metrics Keras logs for each task, with the direction that improves them.
METRICS: dict[str, dict[str, str]] = {
    CLASSIFICATION: {"val_accuracy": "maximize", "val_loss": "minimize"},
    REGRESSION: {"val_loss": "minimize", "val_mae": "minimize"},
}

# The bundled data sets, with their task.
BUILTIN: dict[str, str] = {
    "circles": CLASSIFICATION,
    "moons": CLASSIFICATION,
    "digits": CLASSIFICATION,
    "breast_cancer": CLASSIFICATION,
    "friedman": REGRESSION,
    "noisy_features": CLASSIFICATION,
}
# The user's own files, and folders of images; a source with a colon is the user's function.
FILE_SOURCES = ("csv", "npz", "images")
COLOR_MODES = ("grayscale", "rgb", "rgba")
FUNCTION = "function"

_COMMON_KEYS: dict[str, type | tuple[type, ...]] = {
    "source": str,
    "seed": int,
    "validation_fraction": float,
    "test_fraction": float,
    "reshape": list,
}
# The user's own splits: files of the source's kind named instead of path (see
# autotune.data.splits). A CSV's rows may say their split in a split_column instead.
SPLIT_KEYS = ("train", "validation", "test")
_SPLIT_FILES: dict[str, type | tuple[type, ...]] = dict.fromkeys(SPLIT_KEYS, str)
# Keys by kind of source: the built-in data sets know their task, the user's data does not.
_SOURCE_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "builtin": {},
    "csv": {
        "path": str,
        **_SPLIT_FILES,
        "split_column": str,
        "target": str,
        "features": list,
        "task": str,
        "separator": str,
    },
    "npz": {"path": str, **_SPLIT_FILES, "x": str, "y": str, "task": str},
    "images": {"path": str, "image_size": list, "color_mode": str},
    FUNCTION: {"task": str},
}
# Besides these, a source that takes split files needs path or train.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "builtin": (),
    "csv": ("target", "task"),
    "npz": ("task",),
    "images": ("path",),
    FUNCTION: ("task",),
}
DEFAULTS: dict[str, Any] = {"seed": 0, "validation_fraction": 0.2, "test_fraction": 0.2}
_SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "builtin": {},
    "csv": {"separator": ","},
    "npz": {"x": "x", "y": "y"},
    "images": {"image_size": [64, 64], "color_mode": "rgb"},
    FUNCTION: {},
}
_ALLOWED_SOURCES = (
    ", ".join(sorted([*BUILTIN, *FILE_SOURCES]))
    + ", or your own function as 'module:function' or 'file.py:function'"
)


def kind_of(source: str) -> str:
    """``"builtin"``, ``"csv"``, ``"npz"`` or ``"function"``: what a ``[data] source`` names."""
    if source in BUILTIN:
        return "builtin"
    if source in FILE_SOURCES:
        return source
    return FUNCTION


def validate(data: Any, where: str) -> dict[str, Any]:
    """Checks a study file's ``[data]`` table and fills in the defaults.

    Only the table's form is checked here; the files themselves are read when the study runs.

    Raises:
        StudySpecError: An unknown key or source, a missing or wrongly typed key, fractions
            that leave no training data, or keys of the user's splits that do not go together
            (path and train, split_column and train, validation or test without train).
    """
    if not isinstance(data, Mapping):
        raise StudySpecError(f"{where}: [data] must be a table with a source, but got {data!r}.")
    source = data.get("source")
    if source is None:
        raise StudySpecError(f"{where}: [data] needs a source; one of {_ALLOWED_SOURCES}.")
    if not isinstance(source, str):
        raise StudySpecError(f"{where}: [data] source must be of type str, but got {source!r}.")
    if source not in BUILTIN and source not in FILE_SOURCES and not references.is_reference(source):
        raise StudySpecError(
            f"{where}: unknown data source '{source}'; allowed: {_ALLOWED_SOURCES}."
        )
    kind = kind_of(source)
    keys = {**_COMMON_KEYS, **_SOURCE_KEYS[kind]}
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise StudySpecError(
            f"{where}: [data] has unknown key(s) {', '.join(unknown)} for source '{source}';"
            f" allowed: {', '.join(sorted(keys))}."
        )
    _check_split_keys(data, where)
    missing = [key for key in _REQUIRED[kind] if key not in data]
    if "train" in keys and "path" not in data and "train" not in data:
        missing.insert(0, "path (or train, validation and test: the splits you made)")
    if missing:
        raise StudySpecError(
            f"{where}: [data] source '{source}' needs {' and '.join(missing)}"
            + ('; add for example target = "label"' if "target" in missing else "")
            + (f"; task is {' or '.join(TASKS)}" if "task" in missing else "")
            + "."
        )
    out = {**DEFAULTS, **_SOURCE_DEFAULTS[kind], **data}
    for key, value in out.items():
        kind_of_value = keys[key]
        if kind_of_value is float and isinstance(value, int) and not isinstance(value, bool):
            value = out[key] = float(value)
        if not isinstance(value, kind_of_value) or isinstance(value, bool):
            raise StudySpecError(
                f"{where}: [data] {key} must be of type {getattr(kind_of_value, '__name__', '')},"
                f" but got {value!r}."
            )
    if not 0 <= out["seed"] <= 2**32 - 1:
        raise StudySpecError(
            f"{where}: [data] seed must lie in [0, {2**32 - 1}], but got {out['seed']}."
        )
    for key in ("validation_fraction", "test_fraction"):
        if not 0.0 < out[key] < 1.0:
            raise StudySpecError(f"{where}: [data] {key} must lie in (0, 1), but got {out[key]}.")
    if out["validation_fraction"] + out["test_fraction"] >= 0.9:
        raise StudySpecError(
            f"{where}: validation_fraction + test_fraction must leave at least 10% for"
            f" training, but they add up to {out['validation_fraction'] + out['test_fraction']}."
        )
    if "task" in out and out["task"] not in TASKS:
        raise StudySpecError(
            f"{where}: [data] task must be {' or '.join(TASKS)}, but got '{out['task']}'."
        )
    if "reshape" in out and not _sizes(out["reshape"]):
        raise StudySpecError(
            f"{where}: [data] reshape must be a list of positive whole numbers, the shape of one"
            f" example such as [8, 8, 1], but got {out['reshape']!r}."
        )
    if "features" in out:
        features = out["features"]
        if not features or not all(isinstance(f, str) for f in features):
            raise StudySpecError(
                f"{where}: [data] features must be a non-empty list of column names, but got"
                f" {features!r}."
            )
        if out["target"] in features:
            raise StudySpecError(
                f"{where}: [data] features include the target '{out['target']}'; a model must not"
                f" see its answer. Leave it out of features."
            )
    if "image_size" in out and (len(out["image_size"]) != 2 or not _sizes(out["image_size"])):
        raise StudySpecError(
            f"{where}: [data] image_size must be [height, width] in pixels such as [64, 64], but"
            f" got {out['image_size']!r}."
        )
    if "color_mode" in out and out["color_mode"] not in COLOR_MODES:
        raise StudySpecError(
            f"{where}: [data] color_mode must be one of {', '.join(COLOR_MODES)}, but got"
            f" {out['color_mode']!r}."
        )
    if "split_column" in out:
        column = out["split_column"]
        if column == out["target"] or column in out.get("features", ()):
            raise StudySpecError(
                f"{where}: [data] split_column '{column}' is also"
                f" {'the target' if column == out['target'] else 'one of the features'}; it says"
                f" each row's split, which is not for a model to learn from or to predict. Name"
                f" another column."
            )
    if "separator" in out and len(out["separator"]) != 1:
        raise StudySpecError(
            f'{where}: [data] separator must be one character such as "," or ";", but got'
            f" {out['separator']!r}."
        )
    return out


def _sizes(values: list[Any]) -> bool:
    """Whether ``values`` is a non-empty list of positive whole numbers (a shape)."""
    return bool(values) and all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in values
    )


def _check_split_keys(data: Mapping[str, Any], where: str) -> None:
    """Refuses keys of the user's splits that do not go together."""
    files = [key for key in SPLIT_KEYS if key in data]
    if not files:
        return
    for other, what in (
        ("path", "path names one file that autotune splits"),
        ("split_column", "a split column splits the one file that path names"),
    ):
        if other in data:
            raise StudySpecError(
                f"{where}: [data] names both {other} and {' and '.join(files)}; {what}, while"
                f" train, validation and test name files that are split already. Keep one of"
                f" the two."
            )
    if "train" not in data:
        raise StudySpecError(
            f"{where}: [data] {' and '.join(files)} {'needs' if len(files) == 1 else 'need'}"
            f' train, the file of the training split; add for example train = "train.csv".'
        )


def task_of(data: Mapping[str, Any]) -> str:
    """The task of a validated ``[data]`` table."""
    if data["source"] in BUILTIN:
        return BUILTIN[data["source"]]
    if data["source"] == "images":
        return CLASSIFICATION
    return data["task"]
