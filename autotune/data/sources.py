"""Where a data set's arrays come from: the bundled data sets, a user's NPZ file or function;
and the checks every source's features and targets pass."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import references
from autotune.data.schema import CLASSIFICATION, REGRESSION
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np


def _circles(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    return make_circles(n_samples=1000, factor=0.3, noise=0.05, random_state=seed)


def _moons(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=2000, noise=0.3, random_state=seed)


def _digits(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def _breast_cancer(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def _friedman(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_friedman1

    # y depends on the first 5 features only, nonlinearly, plus N(0, 1) noise: the other 5 are
    # distractors, and no model's mean absolute error can go below about 0.8.
    return make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=seed)


def _noisy_features(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    # 3 classes in 6 informative and 4 redundant features among 40, with 10% of the labels
    # drawn at random: a model must find the signal and not fit the noise.
    return make_classification(
        n_samples=3000,
        n_features=40,
        n_informative=6,
        n_redundant=4,
        n_classes=3,
        flip_y=0.1,
        class_sep=0.8,
        random_state=seed,
    )


# name -> loader(seed) -> (X, y)
LOADERS: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
    "circles": _circles,
    "moons": _moons,
    "digits": _digits,
    "breast_cancer": _breast_cancer,
    "friedman": _friedman,
    "noisy_features": _noisy_features,
}


def path_of(data: Mapping[str, Any], folder: Path, key: str = "path") -> Path:
    """The file that ``[data] <key>`` names."""
    return folder / Path(data[key]).expanduser()


def require_file(path: Path, where: str, key: str = "path") -> None:
    if not path.is_file():
        raise DataError(
            f"{where}: [data] {key}: no file {path}. Fix the path; a relative one starts at the"
            f" study file's folder."
        )


def targets(
    y: Any, task: str, label: str, locate: Callable[[int], str] | None = None
) -> np.ndarray:
    """Checks the targets: one per example, none missing, numbers for regression, whole numbers
    or text for classification.

    Args:
        y: The targets.
        task: The study's task.
        label: Names the targets in messages.
        locate: Names example ``i`` in messages (a CSV file's line); ``example i`` by default.
    """
    import numpy as np

    locate = locate or (lambda i: f"example {i}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{label} must hold one label or value per example, but has shape {y.shape}."
        )
    if y.dtype.kind in "US":
        if task == REGRESSION:
            first = next((i for i, v in enumerate(y) if number(str(v)) is None), 0)
            raise DataError(
                f"{label} holds text ({locate(first)}: {y[first].item()!r}), but task is"
                f' regression, which needs numbers. Set task = "classification", or make the'
                f" targets numbers."
            )
        return y
    if y.dtype.kind not in "biuf":
        raise DataError(f"{label} holds {y.dtype} values; give numbers, or text for class labels.")
    missing = np.flatnonzero(~np.isfinite(y))
    if missing.size:
        raise DataError(
            f"{label} has {missing.size} missing (NaN or infinite) value(s), the first at"
            f" {locate(missing[0])}. Fill them in or drop those examples."
        )
    if task == CLASSIFICATION and y.dtype.kind == "f":
        fractional = np.flatnonzero(y != np.round(y))
        if fractional.size:
            raise DataError(
                f"{label} holds non-whole numbers ({locate(fractional[0])}:"
                f" {y[fractional[0]].item()}), but task is classification. Set task ="
                f' "regression", or give class labels.'
            )
        y = y.astype(np.int64)
    return y


def join_targets(parts: list[np.ndarray]) -> np.ndarray:
    """Checked targets of several files, one after another: as text labels if any file's are
    (a class label such as 1 is then "1", as a CSV's text target holds it)."""
    import numpy as np

    if any(y.dtype.kind in "US" for y in parts):
        parts = [y.astype(str) for y in parts]
    return np.concatenate(parts)


def check_features(x: Any, n: int, label: str) -> np.ndarray:
    """Array features as float32, one row per example, with no missing values."""
    import numpy as np

    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{label}: X must be numbers, but cannot be read as such ({e}). Encode text and"
            f" categories as numbers first, or use a CSV file, whose text columns are one-hot"
            f" encoded."
        ) from e
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 0 or len(x) != n:
        raise DataError(
            f"{label}: X has {len(x) if x.ndim else 0} examples but y has {n}; give one label or"
            f" value per example."
        )
    missing = missing_examples(x)
    if missing:
        raise DataError(
            f"{label}: X has missing (NaN or infinite) values in {missing}. Fill them in or drop"
            f" those examples."
        )
    return x


def missing_examples(x: np.ndarray) -> str:
    """Which examples of ``x`` hold a NaN or an infinity, said for a message (``""``: none)."""
    import numpy as np

    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not bad.any():
        return ""
    return f"{int(bad.sum())} example(s), the first at example {int(np.flatnonzero(bad)[0])}"


def read_npz(path: Path, data: Mapping[str, Any], where: str) -> tuple[Any, Any]:
    import numpy as np

    require_file(path, where)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = "it is empty" if path.stat().st_size == 0 else f"{type(e).__name__}: {e}"
        raise DataError(
            f"{path}: cannot be read as .npz arrays of numbers or strings ({reason}; a truncated"
            f" or partly copied file reads so). Save it again with numpy.savez(path, x=X, y=y)."
        ) from e
    for key in ("x", "y"):
        if data[key] not in arrays:
            raise DataError(
                f"{path}: no array '{data[key]}'; it holds: {', '.join(sorted(arrays)) or 'none'}."
                f' Set [data] {key} = "NAME" to the array of'
                f" {'features' if key == 'x' else 'targets'}."
            )
    return arrays[data["x"]], arrays[data["y"]]


def call_function(reference: str, folder: Path, where: str) -> Any:
    """Calls the user's data function: its ``(X, y)``, or its mapping of ``tf.data`` streams
    (see :mod:`autotune.data.streams`), as it returned them."""
    label = f"{where}: [data] source '{reference}'"
    function, module = references.load(reference, folder, label=label, error=DataError)
    references.check_signature(function, (), label=label, error=DataError)
    try:
        result = function()
    except Exception as e:
        raise DataError(
            f"{label} raised {references.describe(e, getattr(module, '__file__', None))}."
            f" Fix the function."
        ) from e
    if isinstance(result, Mapping):
        return result
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise DataError(
            f"{label} returned {type(result).__name__}, not a pair (X, y) of arrays (or a dict"
            f" of tf.data streams). End it with: return X, y"
        )
    x, y = result
    return x, y


def number(text: str) -> float | None:
    """The finite number a CSV cell holds, or None for text."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
