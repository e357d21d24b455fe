"""The user's own splits: ``train``, ``validation`` and ``test`` files, or a ``split_column``.

Data that comes split already names its split files instead of ``path`` (each of the source's
kind, CSV or NPZ, with the same columns), or names a CSV column whose values say ``train``,
``validation`` or ``test`` (the column is no feature). The user's splits are used as they are,
each in its file's row order; a split left out is taken from the training split (seeded,
stratified by class, ``validation_fraction`` or ``test_fraction`` of its rows), and kept in
the training file's row order too.

What the split files hold is part of the study's identity (:func:`digest`): a study whose
training file changed is refused on resume, as one whose space changed is.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.data.csv_reader import Table
from autotune.data.preprocess import split
from autotune.data.schema import CLASSIFICATION, SPLIT_KEYS
from autotune.data.sources import (
    check_features,
    join_targets,
    path_of,
    read_npz,
    require_file,
    targets,
)
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np

DIGEST = "digest"


def files(data: Mapping[str, Any], folder: Path, where: str) -> dict[str, Path]:
    """The files of the user's splits, by the ``[data]`` key that names them (``path`` for a
    split column's file); none for data that autotune splits.

    Raises:
        DataError: A file is not there.
    """
    keys = [key for key in SPLIT_KEYS if key in data]
    if not keys and "split_column" in data:
        keys = ["path"]
    paths = {key: path_of(data, folder, key) for key in keys}
    for key, path in paths.items():
        require_file(path, where, key)
    return paths


def digest(
    data: Mapping[str, Any], folder: str | Path, where: str = "[data]"
) -> dict[str, str] | None:
    """The SHA-256 of each file of the user's splits, by the ``[data]`` key that names it; None
    for data that autotune splits (whose studies keep the fingerprints they had).

    Raises:
        DataError: A file is not there.
    """
    paths = files(data, Path(folder), where)
    if not paths:
        return None
    return {key: _sha256(str(path), *_stamp(path)) for key, path in paths.items()}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    """A file's SHA-256, read again only once it was written to."""
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def what_changed(before: Any, now: Mapping[str, Any]) -> str:
    """``"data"``, naming the split files whose contents changed when nothing else did."""
    if not isinstance(before, Mapping) or DIGEST not in now:
        return "data"
    rest_before = {k: v for k, v in before.items() if k != DIGEST}
    if rest_before != {k: v for k, v in now.items() if k != DIGEST}:
        return "data"
    hashes = before.get(DIGEST) or {}
    changed = [now[key] for key in now[DIGEST] if hashes.get(key) != now[DIGEST][key]]
    return f"data (the contents of {', '.join(changed)} changed)"


@dataclass(frozen=True)
class UserSplits:
    """The user's splits of data read as one (the split files one after another, train's
    first, or a file with a split column).

    Attributes:
        rows: The given splits' rows in the data; a split left out is not there.
        files: Names the file of each split in messages.
        starts: Where each split file's rows start in the data (none for a split column's).
    """

    rows: Mapping[str, np.ndarray]
    files: Mapping[str, str]
    starts: Mapping[str, int]

    def split(
        self, y: np.ndarray, task: str, data: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the train, validation and test splits: the given ones as they are, the others
        taken from the training split (seeded, stratified by class).

        Raises:
            DataError: The training split is too small to take a split from, or a class is in
                the validation or the test split but not in the training split.
        """
        import numpy as np

        label = self.files["train"]
        given = dict(self.rows)
        if "validation" not in given and "test" not in given:
            # As autotune splits one file: test_fraction and validation_fraction of its rows.
            train = given["train"]
            parts = split(y[train], task, data, label)
            given = dict(zip(SPLIT_KEYS, (train[rows] for rows in parts), strict=True))
        for name in ("test", "validation"):
            if name not in given:
                given["train"], given[name] = _take(given["train"], y, task, data, name, label)
        train, val, test = (np.sort(given[name]) for name in SPLIT_KEYS)
        if task == CLASSIFICATION:
            known = set(np.unique(y[train]).tolist())
            for name, rows in (("validation", val), ("test", test)):
                unseen = [c for c in np.unique(y[rows]).tolist() if c not in known]
                if unseen:
                    raise DataError(
                        f"{self.files.get(name, label)}: class {unseen[0]!r} is in the {name}"
                        f" split but never in the train split ({label}); a model cannot learn"
                        f" a class it never sees. Add examples of it to the train split, or"
                        f" leave them out of the {name} split."
                    )
        return train, val, test

    def in_files(self, **splits: np.ndarray) -> dict[str, np.ndarray]:
        """Each split's rows in the file it came from (a split taken from the training split,
        in the training file)."""
        return {name: rows - self.starts.get(name, 0) for name, rows in splits.items()}


def _take(
    rows: np.ndarray, y: np.ndarray, task: str, data: Mapping[str, Any], name: str, label: str
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` less a seeded, stratified share of them (``[data] <name>_fraction``), and
    that share."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    fraction = data[f"{name}_fraction"]
    classify = task == CLASSIFICATION
    try:
        rest, taken = train_test_split(
            rows,
            test_size=fraction,
            random_state=data["seed"],
            stratify=y[rows] if classify else None,
        )
    except ValueError as e:
        fix = f"Add rows, or give the {name} split yourself."
        if not classify:
            raise DataError(
                f"{label}: {len(rows)} training rows are too few to take a {name} split of"
                f" {fraction} from. {fix}"
            ) from e
        labels, sizes = np.unique(y[rows], return_counts=True)
        raise DataError(
            f"{label}: {len(rows)} training rows in {len(labels)} classes are too few to take a"
            f" {name} split of {fraction} from that holds every class; the smallest class,"
            f" {labels[np.argmin(sizes)].item()!r}, has {sizes.min()} row(s). {fix}"
        ) from e
    return rest, taken


def read_table(
    data: Mapping[str, Any], folder: Path, task: str, where: str
) -> tuple[Table, UserSplits | None]:
    """A CSV source: its file, or its split files read as one table, train's first.

    Returns:
        The table, and the user's splits of its rows (None when autotune splits them).

    Raises:
        DataError: As :meth:`Table.read`; and a split file whose columns are not the training
            file's, or a split column that names no training row.
    """
    import numpy as np

    paths = files(data, folder, where)
    if "train" not in paths:
        table = Table.read(path_of(data, folder), data, task, where)
        if table.parts is None:
            return table, None
        rows = {name: np.flatnonzero(table.parts == i) for i, name in enumerate(SPLIT_KEYS)}
        if not len(rows["train"]):
            raise DataError(
                f"{table.path}: split column '{data['split_column']}' says train on no row;"
                f" the model needs rows to train on. Mark them train."
            )
        label = str(table.path)
        given = {name: r for name, r in rows.items() if len(r)}
        return table, UserSplits(given, dict.fromkeys(SPLIT_KEYS, label), {})
    tables: list[Table] = []
    for path in paths.values():
        tables.append(Table.read(path, data, task, where, like=tables[0] if tables else None))
    sizes = [len(table.y) for table in tables]
    return Table.join(tables), _user_splits(paths, sizes)


def read_arrays(
    data: Mapping[str, Any], folder: Path, task: str, where: str
) -> tuple[Any, Any, str, UserSplits | None]:
    """An NPZ source: its file's arrays, or its split files' arrays one after another, train's
    first.

    Returns:
        X, y, the label of the data in messages, and the user's splits (None when autotune
        splits the data).

    Raises:
        DataError: As :func:`read_npz`; and split files whose examples differ in shape.
    """
    import numpy as np

    paths = files(data, folder, where)
    if not paths:
        path = path_of(data, folder)
        x, y = read_npz(path, data, where)
        return x, y, str(path), None
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for path in paths.values():
        x, y = read_npz(path, data, where)
        ys.append(targets(y, task, f"{path}: y"))
        xs.append(check_features(x, len(ys[-1]), str(path)))
        if xs[-1].shape[1:] != xs[0].shape[1:]:
            raise DataError(
                f"{path}: its examples are of shape {xs[-1].shape[1:]}, but those of"
                f" {paths['train']} of shape {xs[0].shape[1:]}. Give every split file examples"
                f" of one shape."
            )
    sizes = [len(y) for y in ys]
    x = np.concatenate(xs)
    del xs
    return x, join_targets(ys), str(paths["train"]), _user_splits(paths, sizes)


def _user_splits(paths: Mapping[str, Path], sizes: list[int]) -> UserSplits:
    """The splits of the split files' rows, one file after another."""
    import numpy as np

    starts = dict(zip(paths, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    rows = {
        name: np.arange(start, start + size)
        for (name, start), size in zip(starts.items(), sizes, strict=True)
    }
    return UserSplits(rows, {name: str(path) for name, path in paths.items()}, starts)
