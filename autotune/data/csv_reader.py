"""A user's CSV file: read, checked cell by cell (naming the file, line and column of any
problem), and encoded: numbers as float32 less a shift per column (see :class:`NumberColumn`),
text columns one-hot with the training split's categories.

pyarrow parses the file in blocks, so that memory stays bounded: every column as numbers until
a cell that is not one turns up, wherever it is; then that column is read again as text, and
its cells are checked here by the rules of Python's ``float`` and of ``MISSING``, so that a bad
cell far down a file is named as precisely as one near the top. The file's lines are counted
(by Python's csv module) only when a message needs one.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.data.schema import SPLIT_KEYS
from autotune.data.sources import join_targets, number, require_file, targets
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# A CSV cell that holds one of these (case aside) is a missing value.
MISSING = ("", "?", "na", "n/a", "nan", "null")
# A text column with more distinct values than this (and than half the training rows) looks
# like an identifier or free text, whose one-hot encoding would only memorize rows.
MAX_CATEGORIES = 50
# pyarrow holds up to 32 blocks of the file ahead of its parser: small blocks bound what reading
# takes, whatever the file's size. At 200,000 rows, blocks of 128 KiB load 0.1 s faster and
# peak 5 MB higher (scripts/bench_csv.py); 32 KiB, 0.2 s slower for 3 MB less. A row longer than
# a block is read with larger blocks.
BLOCK_SIZE = 64 * 1024
# How many cells of one kind (missing, text) a message quotes.
SHOWN = 3


@dataclass(frozen=True)
class NumberColumn:
    """A number column: each row's number less ``shift``, computed in float64 and rounded to
    float32.

    Numbers such as timestamps or prices, about 1e6 give or take 1, are 0.0625 apart once
    rounded to float32 as they are: standardized, off by up to 0.03. Less a shift near the
    column's values, what float32 rounds off is as small against their spread as against a
    column near 0, and standardizing, which subtracts the mean anyway, is the same.
    """

    values: np.ndarray
    shift: float


@dataclass(frozen=True)
class TextColumn:
    """A text column: its distinct values (stripped, sorted) and each row's index into them."""

    categories: np.ndarray
    codes: np.ndarray

    def values(self) -> np.ndarray:
        """The column as an array of strings, one per row."""
        return self.categories[self.codes]


class Table:
    """A CSV file's checked columns: feature columns as numbers (:class:`NumberColumn`) or as
    text (:class:`TextColumn`), the target, and each row's split if ``[data] split_column``
    names a column that says it.

    A table is encoded once: :meth:`encode` moves the number columns into the matrices it
    returns, and leaves ``None`` in their place, so that a large file is not held twice.
    """

    def __init__(self, path: Path, separator: str) -> None:
        self.path = path
        self.separator = separator
        # name -> NumberColumn (None once encoded) or TextColumn, in the order of the features
        self.columns: dict[str, Any] = {}
        self.y: Any = None
        self.header: list[str] = []
        # Each row's split, as its index in SPLIT_KEYS, with a split column; else None.
        self.parts: np.ndarray | None = None
        self._lines: dict[int, int] = {}  # row of data -> the file's line, for messages

    @classmethod
    def read(
        cls, path: Path, data: Mapping[str, Any], task: str, where: str, like: Table | None = None
    ) -> Table:
        """Reads and checks a CSV file: its header, the target, every feature column, and the
        split column if ``[data]`` names one.

        Args:
            like: The training file's table, when this file holds another split of the same
                data: the file must have its columns, each holding the same kind of values, and
                its numbers are shifted as the training file's are (see :class:`NumberColumn`).

        Raises:
            DataError: Naming the file, the line and the column, and the fix.
        """
        separator = data["separator"]
        require_file(path, where)
        header, skip = read_header(path, separator)
        if like is not None:
            like._same_columns(path, header)
        target = data["target"]
        if target not in header:
            raise DataError(
                f"{path}: no target column '{target}'; the columns are: {', '.join(header)}."
                f" Set [data] target to one of them."
            )
        split_column = data.get("split_column")
        if split_column is not None and split_column not in header:
            raise DataError(
                f"{path}: no split column '{split_column}'; the columns are: {', '.join(header)}."
                f" Set [data] split_column to one of them."
            )
        others = (target, split_column)
        features = data.get("features") or [name for name in header if name not in others]
        unknown = [name for name in features if name not in header]
        if unknown:
            raise DataError(
                f"{path}: no column(s) {', '.join(map(repr, unknown))}; the columns are:"
                f" {', '.join(header)}. Fix [data] features."
            )
        table = cls(path, separator)
        table.header = header
        wanted = {header.index(name): name == target for name in [target, *features]}
        shifts = {}
        if like is not None:
            shifts = {
                header.index(name): column.shift
                for name, column in like.columns.items()
                if isinstance(column, NumberColumn)
            }
        as_text = set()
        if split_column is not None:
            # Read as the text it says, a number such as 1 included, so that a message quotes it.
            wanted[header.index(split_column)] = True
            as_text.add(header.index(split_column))
        read = read_blocks(path, separator, len(header), skip, wanted, shifts, as_text)
        table.y = table._target(target, read[header.index(target)], task)
        for name in features:
            table.columns[name] = table._feature(name, read[header.index(name)], like)
        if split_column is not None:
            table.parts = table._parts(split_column, read[header.index(split_column)])
        return table

    @classmethod
    def join(cls, tables: Sequence[Table]) -> Table:
        """Tables of the same columns (each read ``like`` the first) as one, their rows one
        after another: a number column keeps the first table's shift, a text column's
        categories are all the tables'.

        The tables' columns are moved into the one made, so that a large file is not held twice.
        """
        import numpy as np

        first = tables[0]
        out = cls(first.path, first.separator)
        out.header = first.header
        out.y = join_targets([table.y for table in tables])
        for name, column in first.columns.items():
            parts = [table.columns[name] for table in tables]
            for table in tables:
                table.columns[name] = None  # moved
            if isinstance(column, NumberColumn):
                values = np.concatenate([part.values for part in parts])
                out.columns[name] = NumberColumn(values, column.shift)
                continue
            categories = np.unique(np.concatenate([part.categories for part in parts]))
            codes = [np.searchsorted(categories, part.categories)[part.codes] for part in parts]
            out.columns[name] = TextColumn(categories, np.concatenate(codes).astype(np.int32))
        return out

    def _same_columns(self, path: Path, header: list[str]) -> None:
        """Refuses another split's file whose columns are not this training file's."""
        missing = [name for name in self.header if name not in header]
        extra = [name for name in header if name not in self.header]
        if missing or extra:
            problems = [f"missing {', '.join(map(repr, missing))}"] if missing else []
            problems += [f"extra {', '.join(map(repr, extra))}"] if extra else []
            raise DataError(
                f"{path}: the columns differ from those of the training file {self.path}:"
                f" {'; '.join(problems)}. Give every split file the same columns."
            )

    def _quote(self, cells: _Cells) -> str:
        """The first cells of one kind, with their lines: ``line 7: 'n/a', line 9: '?', ...``."""
        self.lines(row for row, _ in cells.first)
        quoted = ", ".join(f"{self._where(row)}: {cell!r}" for row, cell in cells.first)
        return quoted + (", ..." if cells.count > len(cells.first) else "")

    def _where(self, row: int) -> str:
        line = self.lines([row]).get(row)
        return f"line {line}" if line else f"data row {row + 1}"

    def lines(self, rows: Iterable[int]) -> dict[int, int]:
        """The file's line (where the record ends; the header is line 1) of rows of data,
        counted from 0 under the header, blank rows left out. Reads the file again, with
        Python's csv module, as the lines are wanted only for messages."""
        rows = list(rows)
        wanted = set(rows) - set(self._lines)
        if wanted:
            records = _records(self.path, self.separator)
            try:
                next(records)  # the header
                for row, (line, _) in enumerate(records):
                    if row in wanted:
                        self._lines[row] = line
                        wanted.discard(row)
                        if not wanted:
                            break
            except (UnicodeDecodeError, csv.Error):
                pass  # a row whose line cannot be found is named by its number
        return {row: self._lines[row] for row in rows if row in self._lines}

    def _missing(self, name: str, cells: _Column, fix: str) -> None:
        if cells.missing.count:
            raise DataError(
                f"{self.path}: column '{name}' has {cells.missing.count} missing value(s)"
                f" ({self._quote(cells.missing)}). {fix}"
            )

    def _target(self, name: str, cells: _Column, task: str) -> np.ndarray:
        """The target as numbers, or as text labels for classification."""
        self._missing(name, cells, "Fill them in or drop those rows.")
        y = cells.text_column().values() if cells.text.count else cells.numbers_array()
        return targets(y, task, f"{self.path}: target '{name}'", self._where)

    def _feature(self, name: str, cells: _Column, like: Table | None = None) -> Any:
        """A feature column: numbers, or text, whose categories are found on the training split;
        of the same kind as in the training file's table ``like``, if given."""
        fix = "Fill them in, drop those rows, or leave the column out of [data] features."
        self._missing(name, cells, fix)
        trained = None if like is None else like.columns[name]
        kinds = "; a column holds one kind of value in every split. Fix the values that are wrong."
        if not cells.text.count:
            if isinstance(trained, TextColumn) and like is not None:
                raise DataError(
                    f"{self.path}: column '{name}' holds numbers only, but text in the training"
                    f" file {like.path}{kinds}"
                )
            return cells.number_column()
        if cells.number.count:
            first_number = _Cells(1, cells.number.first[:1])
            raise DataError(
                f"{self.path}: column '{name}' holds numbers ({self._quote(first_number)})"
                f" and text ({self._quote(cells.text)}); fix the values that are wrong (a"
                f" category column must hold only text)."
            )
        if isinstance(trained, NumberColumn) and like is not None:
            raise DataError(
                f"{self.path}: column '{name}' holds text ({self._quote(cells.text)}), but"
                f" numbers in the training file {like.path}{kinds}"
            )
        return cells.text_column()

    def _parts(self, name: str, cells: _Column) -> np.ndarray:
        """Each row's split from the split column: its index in ``SPLIT_KEYS``.

        Raises:
            DataError: A row's value is missing or is not exactly one of the splits' names.
        """
        import numpy as np

        words = ", ".join(SPLIT_KEYS)
        self._missing(name, cells, f"Give every row one of {words}.")
        column = cells.text_column()
        wrong = [i for i, value in enumerate(column.categories.tolist()) if value not in SPLIT_KEYS]
        if wrong:
            row = int(np.flatnonzero(np.isin(column.codes, wrong))[0])
            raise DataError(
                f"{self.path}, {self._where(row)}: split column '{name}' says"
                f" {column.categories[column.codes[row]].item()!r}; each row's must be one of"
                f" {words}."
            )
        index = np.array([SPLIT_KEYS.index(value) for value in column.categories.tolist()])
        return index.astype(np.int8)[column.codes]

    def encode(self, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
        """The three splits' feature matrices (float32): numbers less their column's shift, text
        one-hot encoded with the training split's categories.

        Returns:
            x_train, x_val, x_test, the column names, the indices of the numeric columns, and
            their shifts.
        """
        import numpy as np

        if any(values is None for values in self.columns.values()):
            raise RuntimeError(f"{self.path}: the table was encoded already; read it again.")
        splits = (train, val, test)
        names: list[str] = []
        numeric: list[int] = []
        shift: list[float] = []
        kept: dict[str, np.ndarray] = {}  # text column -> its categories' codes in train
        for name, values in self.columns.items():
            if not isinstance(values, TextColumn):
                numeric.append(len(names))
                shift.append(values.shift)
                names.append(name)
                continue
            kept[name] = np.unique(values.codes[train])
            if len(kept[name]) > max(MAX_CATEGORIES, len(train) // 2):
                raise DataError(
                    f"{self.path}: text column '{name}' has {len(kept[name])} different values"
                    f" in {len(train)} training rows; it looks like an identifier or free text,"
                    f" not a category. Leave it out: list the other columns in [data] features."
                )
            names += [f"{name}={c}" for c in values.categories[kept[name]]]
        # Column-major and filled column by column, each number column freed once copied: the
        # matrices take memory as the table gives it up, and no copy of either is ever made.
        xs = [np.zeros((len(rows), len(names)), np.float32, order="F") for rows in splits]
        j = 0
        for name, values in self.columns.items():
            if not isinstance(values, TextColumn):
                for x, rows in zip(xs, splits, strict=True):
                    x[:, j] = values.values[rows]
                self.columns[name] = None  # moved into the matrices
                j += 1
                continue
            # Codes of categories the training split lacks map to -1: all zeros.
            one_hot = np.full(len(values.categories), -1, dtype=np.int64)
            one_hot[kept[name]] = np.arange(len(kept[name])) + j
            for x, rows in zip(xs, splits, strict=True):
                at = one_hot[values.codes[rows]]
                hit = np.flatnonzero(at >= 0)
                x[hit, at[hit]] = 1.0
            j += len(kept[name])
        return xs[0], xs[1], xs[2], tuple(names), numeric, shift


@dataclass
class _Cells:
    """How many cells of one kind a column holds, and the first few (row, cell) to quote."""

    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)

    def add(self, rows: Any, start: int, cell: Callable[[int], str]) -> None:
        """Counts a block's cells of this kind, at ``rows`` of the block (row ``start`` first)."""
        self.count += len(rows)
        for i in rows[: max(SHOWN - len(self.first), 0)]:
            self.first.append((start + int(i), cell(int(i))))


class _Buffer:
    """An array filled block by block, in one allocation that doubles when full: joining many
    small arrays at the end would leave the heap fragmented, and the process's memory high.
    Capacity never written to takes no memory."""

    def __init__(self, dtype: Any, capacity: int) -> None:
        import numpy as np

        self.array = np.empty(max(capacity, 1), dtype=dtype)
        self.size = 0

    def append(self, values: np.ndarray) -> None:
        import numpy as np

        end = self.size + len(values)
        if end > len(self.array):
            grown = np.empty(max(end, 2 * len(self.array)), dtype=self.array.dtype)
            grown[: self.size] = self.array[: self.size]
            self.array = grown
        self.array[self.size : end] = values
        self.size = end

    def result(self) -> np.ndarray:
        return self.array[: self.size]


class _Column:
    """One column, block by block: what kind each cell is (a number, text or missing), the
    numbers, and the text as codes into the categories seen so far.

    A target (``labels``) that holds any text is read as text labels throughout, its numbers
    included, so its numbers get codes too.
    """

    def __init__(self, rows: int, labels: bool = False) -> None:
        import numpy as np

        self.labels = labels
        self.number = _Cells()
        self.text = _Cells()
        self.missing = _Cells()
        # A target's numbers stay float64: a class label such as 123456789 must stay whole.
        self.numbers = _Buffer(np.float64 if labels else np.float32, rows)
        self.shift: float | None = None  # a feature's: see NumberColumn
        self.codes = _Buffer(np.int32, rows)
        self.categories: dict[str, int] = {}  # stripped text -> code, in the order first seen

    def add_numbers(self, values: np.ndarray, empty: np.ndarray | None, start: int) -> None:
        """Counts a block that pyarrow read as numbers (``empty`` where a cell was empty)."""
        import numpy as np

        if empty is not None and empty.any():
            self.missing.add(np.flatnonzero(empty), start, lambda i: "")
            self.number.count += int(len(values) - empty.sum())
        else:
            self.number.count += len(values)
        self._keep(values)

    def add_text(self, cells: list[str], start: int) -> None:
        """Sorts a block's cells, by their distinct values, into numbers, text and missing."""
        import numpy as np

        distinct_array, index = np.unique(np.array(cells, dtype=str), return_inverse=True)
        distinct: list[str] = distinct_array.tolist()
        kind = np.zeros(len(distinct), dtype=np.int8)  # 0 number, 1 text, 2 missing
        value = np.full(len(distinct), np.nan)
        code = np.full(len(distinct), -1, dtype=np.int32)
        for i, cell in enumerate(distinct):
            text = cell.strip()
            if text.lower() in MISSING:
                kind[i] = 2
                continue
            found = number(cell)
            if found is None:
                kind[i] = 1
            else:
                value[i] = found
            if found is None or self.labels:
                code[i] = self.categories.setdefault(text, len(self.categories))
        kinds = kind[index]
        for k, cells_of_kind in enumerate((self.number, self.text, self.missing)):
            rows = np.flatnonzero(kinds == k)
            cells_of_kind.add(rows, start, lambda i: cells[i])
        if (kind == 0).any():
            self._keep(value[index])
        if (code >= 0).any():
            self.codes.append(code[index])

    def _keep(self, values: np.ndarray) -> None:
        """Keeps a block's numbers (NaN where a cell is not one): a target's as they are, a
        feature's less the column's shift, which the first block with a number sets."""
        if not self.labels:
            if self.shift is None:
                self.shift = _shift(values)
            if self.shift:
                values = values - self.shift
        self.numbers.append(values)

    def numbers_array(self) -> np.ndarray:
        return self.numbers.result()

    def number_column(self) -> NumberColumn:
        return NumberColumn(self.numbers.result(), self.shift or 0.0)

    def text_column(self) -> TextColumn:
        """The text as sorted categories and codes into them (as ``numpy.unique`` sorts)."""
        import numpy as np

        categories = np.array(list(self.categories))
        order = np.argsort(categories, kind="stable")
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        return TextColumn(categories[order], rank[self.codes.result()])


def _shift(values: np.ndarray) -> float | None:
    """A shift for a column (see :class:`NumberColumn`) from its first block: the block's mean,
    rounded to the order of its spread (1000000.0 for 1e6 give or take 1, 3.0 for small whole
    numbers, which stay whole), or None if the block holds no number."""
    import numpy as np

    numbers = values[np.isfinite(values)]
    if not len(numbers):
        return None
    mean, spread = float(numbers.mean()), float(numbers.std())
    if not math.isfinite(mean):  # numbers near float64's limit overflow a sum; float32's anyway
        return 0.0
    if 0 < spread < math.inf:
        mean = round(mean, -math.floor(math.log10(spread)))
    return mean + 0.0  # not -0.0


class _AsText(Exception):
    """A column that pyarrow read as numbers holds a cell that is not one: read it as text."""

    def __init__(self, column: int) -> None:
        self.column = column


def _records(path: Path, separator: str) -> Generator[tuple[int, list[str]], None, None]:
    """A CSV file's non-blank records, each with the file's line where it ends."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file, delimiter=separator)
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row


def read_header(path: Path, separator: str) -> tuple[list[str], int]:
    """A CSV file's column names, and the number of lines up to the end of the header.

    Raises:
        DataError: The file is empty, holds no row under the header, or its header repeats a
            name or has one column (a wrong separator).
    """
    records = _records(path, separator)
    try:
        first = next(records, None)
        second = None if first is None else next(records, None)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot be read as CSV text in UTF-8 ({e}).") from e
    finally:
        records.close()
    if first is None:
        raise DataError(
            f"{path}: is empty; it needs a header row of column names, then one row per example."
        )
    skip, row = first
    header = [name.strip() for name in row]
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
    if second is None:
        raise DataError(f"{path}: has a header but no rows under it; add one row per example.")
    return header, skip


def read_blocks(
    path: Path,
    separator: str,
    width: int,
    skip: int,
    wanted: Mapping[int, bool],
    shifts: Mapping[int, float] | None = None,
    as_text: Iterable[int] = (),
) -> dict[int, _Column]:
    """Reads the rows under the header (its ``skip`` lines left out) in blocks, and checks the
    cells of the ``wanted`` columns (by index; true for the target, or any column whose values
    are labels); blank rows (every cell blank) are left out. Number columns in ``shifts`` take
    that shift (see :class:`NumberColumn`); columns in ``as_text`` are read as text throughout.

    Each wanted column is read as numbers until a cell that is not one turns up; then the file
    is read again with that column as text. pyarrow's compute functions are not used: their
    first call costs some 40 MB, more than the arrays of a file of 100,000 rows.

    Raises:
        DataError: A row whose number of fields differs from the header's, or text that is not
            UTF-8, with its line.
    """
    import pyarrow as pa

    block_size = BLOCK_SIZE
    text = {i for i in range(width) if i not in wanted} | set(as_text)
    while True:
        try:
            return _read(path, separator, width, skip, wanted, text, block_size, shifts or {})
        except _AsText as e:
            text.add(e.column)
        except pa.ArrowInvalid as e:
            found = re.match(r"In CSV column #(\d+): .*conversion error to double", str(e))
            if found and int(found[1]) not in text:
                text.add(int(found[1]))
            elif "conversion error to double" in str(e):
                text.update(range(width))  # a message of another form: read all as text
            elif "straddl" in str(e) and block_size < path.stat().st_size:
                block_size *= 16  # a row longer than a block: read again, in larger blocks
            else:
                raise _unreadable(path, separator, width, e) from None


def _read(
    path: Path,
    separator: str,
    width: int,
    skip: int,
    wanted: Mapping[int, bool],
    text: set[int],
    block_size: int,
    shifts: Mapping[int, float],
) -> dict[int, _Column]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def blank_or_error(row: Any) -> str:
        cells = next(csv.reader([row.text], delimiter=separator), [])
        return "skip" if not any(cell.strip() for cell in cells) else "error"

    names = [str(i) for i in range(width)]
    reader = pacsv.open_csv(
        str(path),
        read_options=pacsv.ReadOptions(
            use_threads=False, block_size=block_size, skip_rows=skip, column_names=names
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=separator, newlines_in_values=True, invalid_row_handler=blank_or_error
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={
                name: pa.string() if i in text else pa.float64() for i, name in enumerate(names)
            },
            # An empty cell of a number column is null; every other cell is as written.
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
        memory_pool=pa.system_memory_pool(),
    )
    columns: dict[int, _Column] = {}
    start = 0
    for batch in reader:
        if not columns:
            # As many rows as the first block's share of the file foretells, and more.
            rows = batch.num_rows * max(path.stat().st_size // block_size, 1) * 5 // 4 + 1
            columns = {i: _Column(rows, labels) for i, labels in wanted.items()}
            for i, shift in shifts.items():
                columns[i].shift = shift
        cells: dict[int, list[str]] = {}  # the block's text columns, as Python strings
        keep = _not_blank(batch, cells)
        for i, column in columns.items():
            if i in text:
                block = cells.get(i) or batch.column(i).to_pylist()
                column.add_text(block if keep is None else [block[j] for j in keep], start)
                continue
            values = batch.column(i).to_numpy(zero_copy_only=False)
            empty = _empty(batch.column(i))
            if keep is not None:
                values = values[keep]
                empty = None if empty is None else empty[keep]
            if not np.isfinite(values[~empty] if empty is not None else values).all():
                raise _AsText(i)  # "nan" is missing and "inf" is text: their text tells
            column.add_numbers(values, empty, start)
        start += batch.num_rows if keep is None else len(keep)
    return columns or {i: _Column(0, labels) for i, labels in wanted.items()}


def _empty(cells: pa.Array) -> np.ndarray | None:
    """Where a column read as numbers had an empty cell (null), or None if nowhere."""
    import numpy as np

    if not cells.null_count:
        return None
    bits = np.frombuffer(cells.buffers()[0], dtype=np.uint8)
    valid = np.unpackbits(bits, bitorder="little")[cells.offset : cells.offset + len(cells)]
    return valid == 0


def _not_blank(batch: pa.RecordBatch, cells: dict[int, list[str]]) -> np.ndarray | None:
    """The rows of a block with a cell that is not blank, or None if that is every row. A text
    column's cells, once read as Python strings, are kept in ``cells``."""
    import numpy as np
    import pyarrow as pa

    blank = np.ones(batch.num_rows, dtype=bool)
    # Number columns first: their empty cells are known without reading any text.
    by_kind = sorted(enumerate(batch.columns), key=lambda c: pa.types.is_string(c[1].type))
    for i, column in by_kind:
        if pa.types.is_string(column.type):
            cells[i] = column.to_pylist()
            blank &= np.fromiter((not c.strip() for c in cells[i]), bool, len(cells[i]))
        else:
            empty = _empty(column)
            if empty is None:
                return None
            blank &= empty
        if not blank.any():
            return None
    return np.flatnonzero(~blank)


def _unreadable(path: Path, separator: str, width: int, error: Exception) -> DataError:
    """Why pyarrow could not read a file, found by reading it again with Python's csv module:
    the first row with a wrong number of fields, or the first line that is not UTF-8."""
    try:
        for line, row in _records(path, separator):
            if len(row) != width:
                return DataError(
                    f"{path}, line {line}: {len(row)} fields, but the header has {width}."
                    f" Check the separator ({separator!r}) and the quoting."
                )
    except UnicodeDecodeError:
        return _not_utf8(path)
    except csv.Error as e:
        return DataError(f"{path}: cannot be read as CSV text in UTF-8 ({e}).")
    return DataError(f"{path}: cannot be read as CSV ({error}).")


def _not_utf8(path: Path) -> DataError:
    """Names the first line of a file that is not UTF-8 text."""
    with path.open("rb") as file:
        for line, raw in enumerate(file, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return DataError(
                    f"{path}, line {line}: cannot be read as CSV text in UTF-8 ({e}). Save the"
                    f" file as UTF-8."
                )
    return DataError(f"{path}: cannot be read as CSV text in UTF-8.")
