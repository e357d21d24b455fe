"""A user's CSV file: read, checked cell by cell (naming the file, line and column of any
problem), and encoded: numbers as they are, text columns one-hot with the training split's
categories."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.data.sources import number, require_file, targets
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np

# A CSV cell that holds one of these (case aside) is a missing value.
MISSING = ("", "?", "na", "n/a", "nan", "null")
# A text column with more distinct values than this (and than half the training rows) looks
# like an identifier or free text, whose one-hot encoding would only memorize rows.
MAX_CATEGORIES = 50


class Table:
    """A CSV file's checked columns: feature columns as numbers or as text categories, and the
    target, with the file's line of every row for messages."""

    def __init__(self, path: Path, lines: list[int]) -> None:
        self.path = path
        self.lines = lines
        self.columns: dict[str, Any] = {}  # name -> float array, or str array of categories
        self.y: Any = None

    @classmethod
    def read(cls, path: Path, data: Mapping[str, Any], task: str, where: str) -> Table:
        """Reads and checks a CSV file: its header, the target and every feature column.

        Raises:
            DataError: Naming the file, the line and the column, and the fix.
        """
        header, body = read_rows(path, data["separator"], where)
        target = data["target"]
        if target not in header:
            raise DataError(
                f"{path}: no target column '{target}'; the columns are: {', '.join(header)}."
                f" Set [data] target to one of them."
            )
        features = data.get("features") or [name for name in header if name != target]
        unknown = [name for name in features if name not in header]
        if unknown:
            raise DataError(
                f"{path}: no column(s) {', '.join(map(repr, unknown))}; the columns are:"
                f" {', '.join(header)}. Fix [data] features."
            )
        table = cls(path, [line for line, _ in body])
        column = {name: [row[i] for _, row in body] for i, name in enumerate(header)}
        table.y = table._target(target, column[target], task)
        for name in features:
            table.columns[name] = table._feature(name, column[name])
        return table

    def _lines_of(self, rows: list[int], values: list[str]) -> str:
        shown = ", ".join(f"line {self.lines[i]}: {values[i]!r}" for i in rows[:3])
        return shown + (", ..." if len(rows) > 3 else "")

    def _parse(
        self, name: str, values: list[str], fix: str
    ) -> tuple[list[float | None], list[int]]:
        """The numbers a column holds (None for text) and the rows of text; refuses missing ones."""
        missing = [i for i, v in enumerate(values) if v.strip().lower() in MISSING]
        if missing:
            raise DataError(
                f"{self.path}: column '{name}' has {len(missing)} missing value(s)"
                f" ({self._lines_of(missing, values)}). {fix}"
            )
        numbers = [number(v) for v in values]
        return numbers, [i for i, v in enumerate(numbers) if v is None]

    def _target(self, name: str, values: list[str], task: str) -> np.ndarray:
        """The target as numbers, or as text labels for classification."""
        numbers, text = self._parse(name, values, "Fill them in or drop those rows.")
        y = [v.strip() for v in values] if text else numbers
        return targets(y, task, f"{self.path}: target '{name}'", lambda i: f"line {self.lines[i]}")

    def _feature(self, name: str, values: list[str]) -> np.ndarray:
        """A feature column: numbers, or text, whose categories are found on the training split."""
        import numpy as np

        fix = "Fill them in, drop those rows, or leave the column out of [data] features."
        numbers, text = self._parse(name, values, fix)
        if not text:
            return np.asarray(numbers, dtype=np.float64)
        if len(text) < len(values):
            counted = [i for i, v in enumerate(numbers) if v is not None]
            raise DataError(
                f"{self.path}: column '{name}' holds numbers"
                f" ({self._lines_of(counted[:1], values)}) and text"
                f" ({self._lines_of(text, values)}); fix the values that are wrong (a category"
                f" column must hold only text)."
            )
        return np.asarray([v.strip() for v in values])

    def encode(self, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
        """The three splits' feature matrices: numbers as they are, text one-hot encoded with
        the training split's categories.

        Returns:
            x_train, x_val, x_test, the column names, and the indices of the numeric columns.
        """
        import numpy as np

        blocks: list[np.ndarray] = []
        names: list[str] = []
        numeric: list[int] = []
        for name, values in self.columns.items():
            if values.dtype.kind == "f":
                numeric.append(len(names))
                names.append(name)
                blocks.append(values[:, None])
                continue
            categories = np.unique(values[train])
            if len(categories) > max(MAX_CATEGORIES, len(train) // 2):
                raise DataError(
                    f"{self.path}: text column '{name}' has {len(categories)} different values in"
                    f" {len(train)} training rows; it looks like an identifier or free text, not a"
                    f" category. Leave it out: list the other columns in [data] features."
                )
            names += [f"{name}={c}" for c in categories]
            blocks.append((values[:, None] == categories[None, :]).astype(np.float64))
        x = np.concatenate(blocks, axis=1)
        return x[train], x[val], x[test], tuple(names), numeric


def read_rows(
    path: Path, separator: str, where: str
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV file's header and its non-blank rows, each with its line number."""
    require_file(path, where)
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
    if len(header) < 2:
        raise DataError(
            f"{path}: the header has one column, {header[0]!r}; a CSV needs features and a target."
            f" Check [data] separator (now {separator!r})."
        )
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}."
                f" Check the separator ({separator!r}) and the quoting."
            )
    return header, rows[1:]
