"""Data sets: the [data] table, the user's CSV, NPZ and function sources, and the splits."""

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from autotune import data
from autotune.data.preprocess import split
from autotune.data.sources import LOADERS
from autotune.errors import DataError, StudySpecError

HEADER = ["size", "rooms", "district", "label", "price"]


def write_csv(
    folder: Path, rows: list[list], name: str = "houses.csv", header=HEADER, sep=","
) -> Path:
    path = folder / name
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=sep)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def houses(n: int = 60, seed: int = 0) -> list[list]:
    """Rows of a small, realistic table: numbers, a text category, a class and a price."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        size = round(float(rng.uniform(30, 150)), 1)
        rooms = int(rng.integers(1, 6))
        district = ["north", "south", "east"][i % 3]
        price = round(size * 3000 + rooms * 10_000 + (district == "north") * 50_000, 0)
        rows.append([size, rooms, district, "big" if size > 90 else "small", price])
    return rows


def csv_table(**overrides) -> dict:
    table = {"source": "csv", "path": "houses.csv", "target": "label", "task": "classification"}
    table.update(overrides)
    return data.validate(table, "study.toml")


def test_a_csv_is_split_encoded_and_standardized_on_the_training_rows_only(tmp_path: Path):
    write_csv(tmp_path, houses())
    ds = data.load(csv_table(features=["size", "rooms", "district"]), tmp_path)

    assert ds.task == "classification" and ds.n_outputs == 2 and ds.classes == ("big", "small")
    assert ds.features == ("size", "rooms", "district=east", "district=north", "district=south")
    assert ds.sizes() == {"train": 36, "validation": 12, "test": 12}
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    # numeric columns: mean 0 and deviation 1 on the training split, not on the others
    assert np.allclose(ds.x_train[:, :2].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(ds.x_train[:, :2].std(axis=0), 1, atol=1e-5)
    assert not np.allclose(ds.x_val[:, :2].mean(axis=0), 0, atol=1e-3)
    # one-hot columns stay 0 and 1, one category per row
    assert set(np.unique(ds.x_train[:, 2:])) == {0.0, 1.0}
    assert (ds.x_train[:, 2:].sum(axis=1) == 1).all()


def test_categories_are_learned_on_the_training_split(tmp_path: Path):
    rows = houses()
    _, _, test = split(np.array([r[3] for r in rows]), "classification", csv_table(), "x")
    rows[test[0]][2] = "harbour"  # a category that only the test split holds
    write_csv(tmp_path, rows)
    ds = data.load(csv_table(features=["district"]), tmp_path)
    assert "district=harbour" not in ds.features
    assert (ds.x_test.sum(axis=1) == 0).sum() == 1  # it encodes as all zeros


def test_splits_are_seeded_disjoint_and_keep_every_row(tmp_path: Path):
    write_csv(tmp_path, houses(100))
    first = data.load(csv_table(features=["size"]), tmp_path)
    data._load_cached.cache_clear()  # really read and split again
    again = data.load(csv_table(features=["size"]), tmp_path)
    for name in ("x_train", "x_val", "x_test", "y_train"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    other = data.load(csv_table(features=["size"], seed=1), tmp_path)
    assert not np.array_equal(first.x_test, other.x_test)

    labels = np.array([r[3] for r in houses(100)])
    train, val, test = split(labels, "classification", csv_table(), "x")
    assert sorted([*train, *val, *test]) == list(range(100))
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)


def test_a_regression_target_stays_in_its_units(tmp_path: Path):
    write_csv(tmp_path, houses())
    ds = data.load(csv_table(target="price", task="regression"), tmp_path)
    assert ds.task == "regression" and ds.n_outputs == 1 and ds.classes == ()
    assert ds.y_train.dtype == np.float32 and ds.y_train.min() > 50_000
    # every column but the target is a feature when features is left out
    assert ds.features[:2] == ("size", "rooms") and "label=big" in ds.features


def test_the_separator_is_configurable(tmp_path: Path):
    write_csv(tmp_path, houses(), sep=";")
    ds = data.load(csv_table(separator=";", features=["size"]), tmp_path)
    assert ds.input_shape == (1,)


@pytest.mark.parametrize(
    "rows, table, message",
    [
        (
            [[50, 2, "north", "", 1]],
            {},
            r"houses.csv: column 'label' has 1 missing value\(s\) \(line 2: ''\). Fill them in or drop those rows.",
        ),
        (
            [[50, "NA", "north", "big", 1]],
            {},
            r"column 'rooms' has 1 missing value\(s\) \(line 2: 'NA'\). Fill them in, drop those rows, or leave the column out of \[data\] features.",
        ),
        (
            [[50, "three", "north", "big", 1]],
            {},
            r"column 'rooms' holds numbers \(line 3: '\d'\) and text \(line 2: 'three'\); fix the values that are wrong",
        ),
        (
            [],
            {"target": "kind"},
            r"houses.csv: no target column 'kind'; the columns are: size, rooms, district, label, price. Set \[data\] target to one of them.",
        ),
        (
            [],
            {"features": ["size", "floor"]},
            r"no column\(s\) 'floor'; the columns are: .* Fix \[data\] features.",
        ),
        (
            [],
            {"target": "label", "task": "regression"},
            r"target 'label' holds text \(line 2: 'big'.*\), but task is regression, which needs numbers. Set task = \"classification\"",
        ),
        (
            [[50, 2, "north", "big", 1, "extra"]],
            {},
            r"houses.csv, line 2: 6 fields, but the header has 5. Check the separator",
        ),
    ],
)
def test_bad_csv_files_name_the_file_the_line_and_the_fix(tmp_path: Path, rows, table, message):
    write_csv(tmp_path, rows + houses())
    with pytest.raises(DataError, match=message) as info:
        data.load(csv_table(**table), tmp_path)
    assert "\n" not in str(info.value)


def test_a_missing_file_names_the_path_and_where_it_starts(tmp_path: Path):
    with pytest.raises(
        DataError,
        match=r"study.toml: \[data\] path: no file .*houses.csv. Fix the path; a relative one starts at the study file's folder.",
    ):
        data.load(csv_table(), tmp_path, where="study.toml")


def test_a_fractional_class_label_and_an_identifier_column_are_refused(tmp_path: Path):
    rows = [[r[0], r[1], r[2], r[0], r[4]] for r in houses()]  # sizes as class labels
    write_csv(tmp_path, rows)
    with pytest.raises(
        DataError,
        match=r"target 'label' holds non-whole numbers .* but task is classification. Set task = \"regression\"",
    ):
        data.load(csv_table(), tmp_path)

    rows = [[r[0], r[1], f"customer {i}", r[3], r[4]] for i, r in enumerate(houses(300))]
    write_csv(tmp_path, rows, name="ids.csv")
    with pytest.raises(
        DataError,
        match=r"text column 'district' has 180 different values in 180 training rows; it looks like an identifier",
    ):
        data.load(csv_table(path="ids.csv"), tmp_path)


def test_too_few_rows_per_class_get_a_clear_message(tmp_path: Path):
    write_csv(tmp_path, [[50, 2, "north", "rare", 1]] + houses())
    with pytest.raises(
        DataError,
        match=r"61 rows in 3 classes are too few to split .* the smallest class, 'rare', has 1 row\(s\). Add rows, or drop the rarest classes.",
    ):
        data.load(csv_table(), tmp_path)


def long_csv(tmp_path: Path, cell: str, at: int = 9000, n: int = 10_000) -> Path:
    """A CSV of ``n`` rows (about 200 KB, more than one block of the reader) whose column b
    holds ``cell`` on the data row ``at``, the file's line ``at + 2``."""
    lines = ["a,b,label"]
    lines += [f"{i},{cell if i == at else f'{i % 7}.5'},{'ab'[i % 2]}" for i in range(n)]
    (tmp_path / "long.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "long.csv"


@pytest.mark.parametrize(
    "cell, message",
    [
        ("three", r"column 'b' holds numbers \(line 2: '0.5'\) and text \(line 9002: 'three'\);"),
        ("", r"column 'b' has 1 missing value\(s\) \(line 9002: ''\)"),
        (" NaN", r"column 'b' has 1 missing value\(s\) \(line 9002: ' NaN'\)"),
        ("inf", r"column 'b' holds numbers \(line 2: '0.5'\) and text \(line 9002: 'inf'\);"),
        ("1e400", r"column 'b' holds numbers \(line 2: '0.5'\) and text \(line 9002: '1e400'\);"),
    ],
)
def test_one_bad_cell_far_down_a_number_column_is_named_with_its_line(
    tmp_path: Path, cell: str, message: str
):
    long_csv(tmp_path, cell)
    with pytest.raises(DataError, match=message):
        data.load(csv_table(path="long.csv"), tmp_path)


def test_numbers_far_down_read_as_python_reads_them(tmp_path: Path):
    long_csv(tmp_path, " 1_000.5 ")  # pyarrow refuses this one; Python's float() takes it
    ds = data.load(csv_table(path="long.csv"), tmp_path)
    assert ds.features == ("a", "b") and ds.x_train.shape == (6000, 2)


@pytest.mark.parametrize("read_as", ["numbers", "text"])
def test_a_column_with_a_large_offset_is_standardized_as_in_float64(tmp_path: Path, read_as):
    # Timestamps or prices: about 1e6, give or take 1. Rounded to float32 as they are, they
    # would be 0.06 apart, and their standardized values off by up to 0.03.
    rng = np.random.default_rng(0)
    stamp = 1e6 + rng.normal(size=10_000)
    cells = [repr(v) for v in stamp.tolist()]
    if read_as == "text":  # pyarrow refuses this cell: the column is read again, by float()
        cells[-1] = f"{stamp[-1]:_}"
    lines = ["stamp,label"] + [f"{cell},{'ab'[i % 2]}" for i, cell in enumerate(cells)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    ds = data.load(csv_table(path="s.csv"), tmp_path)

    train = stamp[ds.rows["train"], None]
    scaler = StandardScaler().fit(train)
    for split_name, x in (("train", ds.x_train), ("validation", ds.x_val), ("test", ds.x_test)):
        exact = scaler.transform(stamp[ds.rows[split_name], None])
        assert np.abs(x - exact).max() < 1e-5
    rounded = (train.astype(np.float32) - scaler.mean_) / scaler.scale_
    assert np.abs(rounded - scaler.transform(train)).max() > 1e-2  # what the test guards
    (column,) = ds.preprocessing.columns
    assert abs(column.shift - 1e6) < 1  # what the reader subtracted before rounding
    assert abs(column.mean - scaler.mean_[0]) < 1e-6 * scaler.scale_[0]
    assert column.scale == pytest.approx(scaler.scale_[0], rel=1e-6)


def test_a_row_of_the_wrong_length_far_down_is_named_with_its_line(tmp_path: Path):
    lines = ["a,b,label"] + [f"{i},{i % 7},{'ab'[i % 2]}" for i in range(10_000)]
    lines[9001] = "9000,3"
    (tmp_path / "long.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError,
        match=r"long.csv, line 9002: 2 fields, but the header has 3. Check the separator \(','\) and the quoting.",
    ):
        data.load(csv_table(path="long.csv"), tmp_path)


def test_quoted_separators_newlines_a_bom_and_blank_rows_read_as_python_reads_them(
    tmp_path: Path,
):
    # A BOM before the header, a separator and a newline inside quotes, blank rows of every
    # kind: the lines counted for a message are the file's, multi-line records included.
    districts = ["the\nsouth", "north, east"]
    rows = [f'{i},"{districts[i % 2]}",{"ab"[i % 2]}' for i in range(60)]
    text = "\ufeffa,district,label\n" + "\n".join(rows[:30]) + "\n,,\n  \n\n , , \n"
    (tmp_path / "q.csv").write_text(text + "\n".join(rows[30:]) + "\n")
    ds = data.load(csv_table(path="q.csv"), tmp_path)
    assert ds.features == ("a", "district=north, east", "district=the\nsouth")
    assert sum(ds.sizes().values()) == 60

    (tmp_path / "q.csv").write_text(text + "\n".join(rows[30:]) + '\n99,"east",\n')
    with pytest.raises(DataError, match=r"column 'label' has 1 missing value\(s\) \(line 96: ''\)"):
        data.load(csv_table(path="q.csv"), tmp_path)


def test_a_target_of_numbers_then_text_is_read_as_text_labels(tmp_path: Path):
    lines = ["a,label"] + [f"{i},{i % 2}" for i in range(10_000)] + ["1,cat", "2,cat", "3,cat"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    ds = data.load(csv_table(path="t.csv"), tmp_path)
    assert ds.classes == ("0", "1", "cat")


def test_a_header_without_rows_and_text_not_in_utf8_are_named(tmp_path: Path):
    (tmp_path / "h.csv").write_text("a,b,label\n\n,,\n")
    with pytest.raises(
        DataError, match=r"h.csv: has a header but no rows under it; add one row per example."
    ):
        data.load(csv_table(path="h.csv"), tmp_path)

    lines = "a,b,label\n" + "".join(f"{i},{i % 7},{'ab'[i % 2]}\n" for i in range(10_000))
    (tmp_path / "l.csv").write_bytes((lines + "1,caf\u00e9,a\n").encode("latin-1"))
    with pytest.raises(
        DataError,
        match=r"l.csv, line 10002: cannot be read as CSV text in UTF-8 \('utf-8' codec can't decode byte 0xe9 in position 5: .*\). Save the file as UTF-8.",
    ):
        data.load(csv_table(path="l.csv"), tmp_path)


def test_a_table_encodes_to_float32_and_hands_its_numbers_over(tmp_path: Path):
    from autotune.data.csv_reader import Table

    write_csv(tmp_path, houses())
    table = Table.read(tmp_path / "houses.csv", csv_table(), "classification", "s")
    assert list(table.columns) == ["size", "rooms", "district", "price"]
    rows = np.arange(60)
    x_train, _, _, names, numeric, shift = table.encode(rows[:40], rows[40:50], rows[50:])
    assert x_train.dtype == np.float32 and numeric == [0, 1, 5]
    assert names == ("size", "rooms", "district=east", "district=north", "district=south", "price")
    assert x_train[0, 0] == np.float32(houses()[0][0] - shift[0])
    assert shift[1] == 3.0 and x_train[0, 1] == houses()[0][1] - 3  # small whole numbers stay whole
    assert table.columns["size"] is None and table.columns["district"] is not None
    with pytest.raises(RuntimeError, match="encoded already"):
        table.encode(rows[:40], rows[40:50], rows[50:])


def test_npz_arrays_with_configurable_names(tmp_path: Path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", images=rng.random((50, 4, 4)), labels=np.arange(50) % 2)
    table = data.validate(
        {
            "source": "npz",
            "path": "images.npz",
            "x": "images",
            "y": "labels",
            "task": "classification",
        },
        "s",
    )
    ds = data.load(table, tmp_path)
    assert ds.input_shape == (4, 4) and ds.n_outputs == 2

    with pytest.raises(
        DataError,
        match=r"images.npz: no array 'x'; it holds: images, labels. Set \[data\] x = \"NAME\"",
    ):
        data.load(
            data.validate({"source": "npz", "path": "images.npz", "task": "classification"}, "s"),
            tmp_path,
        )

    x = rng.random((50, 3))
    x[7, 1] = np.nan
    np.savez(tmp_path / "gaps.npz", x=x, y=np.arange(50) % 2)
    with pytest.raises(
        DataError,
        match=r"gaps.npz: X has missing \(NaN or infinite\) values in 1 example\(s\), the first at example 7",
    ):
        data.load(
            data.validate({"source": "npz", "path": "gaps.npz", "task": "classification"}, "s"),
            tmp_path,
        )


def test_a_function_source_returns_x_and_y(tmp_path: Path):
    (tmp_path / "loaders.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    rng = np.random.default_rng(0)\n"
        "    x = rng.normal(size=(80, 3))\n"
        "    return x, x @ [1.0, 2.0, -1.0]\n"
        "def broken():\n"
        "    raise ConnectionError('database is down')\n"
        "def single():\n"
        "    return np.zeros(3)\n"
    )
    ds = data.load(
        data.validate({"source": "loaders.py:load", "task": "regression"}, "s"), tmp_path
    )
    assert ds.n_outputs == 1 and ds.input_shape == (3,)

    with pytest.raises(
        DataError,
        match=r"s: \[data\] source 'loaders.py:broken' raised ConnectionError: database is down \(loaders.py, line 7\). Fix the function.",
    ):
        data.load(
            data.validate({"source": "loaders.py:broken", "task": "regression"}, "s"),
            tmp_path,
            where="s",
        )
    with pytest.raises(
        DataError, match=r"'loaders.py:single' returned ndarray, not a pair \(X, y\) of arrays"
    ):
        data.load(
            data.validate({"source": "loaders.py:single", "task": "regression"}, "s"),
            tmp_path,
            where="s",
        )
    with pytest.raises(
        DataError,
        match=r"'loaders.py:lod': loaders.py has no 'lod'; it defines broken, load, single. Fix the name after the colon.",
    ):
        data.load(
            data.validate({"source": "loaders.py:lod", "task": "regression"}, "s"),
            tmp_path,
            where="s",
        )


def test_digits_as_images():
    ds = data.load(data.validate({"source": "digits", "reshape": [8, 8, 1]}, "s"))
    assert ds.input_shape == (8, 8, 1) and ds.n_outputs == 10
    with pytest.raises(
        DataError, match=r"reshape \[8, 8, 2\] holds 128 values per example, but the data has 64"
    ):
        data.load(data.validate({"source": "digits", "reshape": [8, 8, 2]}, "s"))


def test_every_bundled_data_set_has_a_loader_and_a_task():
    assert set(LOADERS) == set(data.BUILTIN)


@pytest.mark.parametrize(
    "source, task, n_features, n_outputs",
    [("friedman", "regression", 10, 1), ("noisy_features", "classification", 40, 3)],
)
def test_the_generated_data_sets_are_seeded(source, task, n_features, n_outputs):
    ds = data.load(data.validate({"source": source}, "s"))
    assert ds.task == task and ds.n_outputs == n_outputs and ds.input_shape == (n_features,)
    assert sum(ds.sizes().values()) == len(LOADERS[source](0)[1])
    x, y = LOADERS[source](0)
    again, other = LOADERS[source](0), LOADERS[source](1)
    assert np.array_equal(x, again[0]) and np.array_equal(y, again[1])
    assert not np.array_equal(x, other[0])
    reseeded = data.load(data.validate({"source": source, "seed": 1}, "s"))
    assert not np.array_equal(ds.x_train, reseeded.x_train)


def test_friedman_targets_are_numbers_kept_in_their_units():
    ds = data.load(data.validate({"source": "friedman"}, "s"))
    assert ds.y_train.dtype == np.float32 and ds.classes == ()
    # make_friedman1's targets lie around 14 with a spread of about 5, not standardized
    assert 10 < ds.y_train.mean() < 18 and 3 < ds.y_train.std() < 7


def test_the_builtin_tables_store_what_they_stored_before():
    # Stored studies are recognized by their [data] table: it must not gain keys.
    assert data.validate({"source": "circles"}, "s") == {
        "source": "circles",
        "seed": 0,
        "validation_fraction": 0.2,
        "test_fraction": 0.2,
    }


@pytest.mark.parametrize(
    "table, message",
    [
        (
            {"source": "csv", "path": "a.csv", "target": "y"},
            r"s: \[data\] source 'csv' needs task; task is classification or regression.",
        ),
        (
            {"source": "csv", "path": "a.csv", "task": "regression"},
            r"source 'csv' needs target; add for example target = \"label\".",
        ),
        ({"source": "csv", "target": "y", "task": "regression"}, r"source 'csv' needs path."),
        (
            {"source": "csv", "path": "a.csv", "target": "y", "task": "regresion"},
            r"task must be classification or regression, but got 'regresion'.",
        ),
        (
            {
                "source": "csv",
                "path": "a.csv",
                "target": "y",
                "task": "regression",
                "features": ["a", "y"],
            },
            r"features include the target 'y'",
        ),
        (
            {"source": "csv", "path": "a.csv", "target": "y", "task": "regression", "x": "a"},
            r"unknown key\(s\) x for source 'csv'; allowed: features, path, reshape, seed,",
        ),
        (
            {
                "source": "csv",
                "path": "a.csv",
                "target": "y",
                "task": "regression",
                "separator": ";;",
            },
            r"separator must be one character",
        ),
        ({"source": "digits", "task": "regression"}, r"unknown key\(s\) task for source 'digits'"),
        (
            {"source": "digits", "reshape": [8, 0]},
            r"reshape must be a list of positive whole numbers",
        ),
        (
            {"source": "sql"},
            r"unknown data source 'sql'; allowed: breast_cancer, circles, csv, digits, friedman, images, moons, noisy_features, npz, or your own function as 'module:function'",
        ),
    ],
)
def test_bad_data_tables(table, message):
    with pytest.raises(StudySpecError, match=message):
        data.validate(table, "s")


@pytest.mark.parametrize(
    "cut, reason", [(0, "it is empty"), (0.5, "BadZipFile: File is not a zip file")]
)
def test_a_truncated_or_empty_npz_is_one_line(tmp_path: Path, cut: float, reason: str):
    np.savez(tmp_path / "good.npz", x=np.random.rand(40, 3), y=np.arange(40) % 2)
    whole = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: int(len(whole) * cut)])
    table = data.validate({"source": "npz", "path": "cut.npz", "task": "classification"}, "s")
    with pytest.raises(
        DataError,
        match=rf"cut.npz: cannot be read as .npz arrays of numbers or strings \({reason}; a truncated or partly copied file reads so\)\. Save it again",
    ):
        data.load(table, tmp_path, where="s")


def test_a_target_of_one_class_is_named_as_the_datas_fault(tmp_path: Path):
    (tmp_path / "one.csv").write_text(
        "a,b,label\n" + "".join(f"{i},{2 * i},yes\n" for i in range(40))
    )
    table = data.validate(
        {"source": "csv", "path": "one.csv", "target": "label", "task": "classification"}, "s"
    )
    with pytest.raises(
        DataError,
        match=r"one.csv: the target holds one class only \('yes'\), and there is nothing to tell apart\.",
    ):
        data.load(table, tmp_path, where="s")


# The user's own splits: train, validation and test files, or a split column.


def split_files(folder: Path, sizes=(60, 20, 15), header=HEADER) -> list[list[list]]:
    """Writes train.csv, val.csv and test.csv, each of its own rows; returns their rows."""
    parts = []
    for seed, (name, n) in enumerate(zip(("train.csv", "val.csv", "test.csv"), sizes, strict=True)):
        parts.append(houses(n, seed=seed))
        write_csv(folder, parts[-1], name=name, header=header)
    return parts


def splits_table(**overrides) -> dict:
    """A [data] table of the split files; an override of None leaves that key out."""
    table = {
        "source": "csv",
        "train": "train.csv",
        "validation": "val.csv",
        "test": "test.csv",
        "target": "label",
        "task": "classification",
        **overrides,
    }
    return data.validate({k: v for k, v in table.items() if v is not None}, "study.toml")


def test_split_files_are_used_as_they_are_in_their_row_order(tmp_path: Path):
    train, val, test = split_files(tmp_path)
    ds = data.load(splits_table(features=["size", "rooms", "district"]), tmp_path)

    assert ds.sizes() == {"train": 60, "validation": 20, "test": 15}
    for name, rows in (("train", train), ("validation", val), ("test", test)):
        assert list(ds.rows[name]) == list(range(len(rows)))  # each file's rows, in order
    assert [ds.classes[i] for i in ds.y_test] == [r[3] for r in test]
    assert [ds.classes[i] for i in ds.y_val] == [r[3] for r in val]
    # standardized with the training file's statistics alone
    sizes = np.array([r[0] for r in train])
    assert np.allclose(
        ds.x_test[:, 0], (np.array([r[0] for r in test]) - sizes.mean()) / sizes.std(), atol=1e-5
    )
    assert np.allclose(ds.x_train[:, :2].mean(axis=0), 0, atol=1e-5)

    # a split file edited between two loads in one process (a notebook) is read again
    write_csv(tmp_path, test[:10], name="test.csv")
    assert data.load(splits_table(features=["size"]), tmp_path).sizes()["test"] == 10


def test_the_fitted_preprocessing_turns_the_raw_test_rows_into_x_test(tmp_path: Path):
    # A column with a large offset: the test file's numbers take the training file's shift.
    rng = np.random.default_rng(0)

    def rows(n: int) -> list[list]:
        return [[repr(1e6 + rng.normal()), "nsw"[i % 3], "ab"[i % 2]] for i in range(n)]

    train, test = rows(60), rows(20)
    test[0][1] = "harbour"  # a category only the test file holds: all zeros
    header = ["stamp", "district", "label"]
    write_csv(tmp_path, train, name="train.csv", header=header)
    write_csv(tmp_path, test, name="test.csv", header=header)
    ds = data.load(splits_table(validation=None), tmp_path)

    stamp, district = ds.preprocessing.columns
    assert district.categories == ("n", "s", "w")
    raw = np.array([float(r[0]) for r in test])
    real = np.float32
    number = ((raw - stamp.shift).astype(real) - real(stamp.mean - stamp.shift)) / real(stamp.scale)
    one_hot = np.array([[r[1] == c for c in district.categories] for r in test], dtype=real)
    assert np.array_equal(ds.x_test, np.column_stack([number, one_hot]))
    assert not ds.x_test[0, 1:].any()


def test_a_split_left_out_is_taken_from_the_training_file_seeded_and_stratified(tmp_path: Path):
    train, _, _ = split_files(tmp_path, sizes=(100, 20, 15))
    labels = np.array([r[3] for r in train])

    no_validation = data.load(splits_table(validation=None), tmp_path)
    assert no_validation.sizes() == {"train": 80, "validation": 20, "test": 15}
    rows = no_validation.rows
    assert list(rows["test"]) == list(range(15))
    assert sorted([*rows["train"], *rows["validation"]]) == list(range(100))
    assert list(rows["validation"]) == sorted(rows["validation"])  # the file's order
    share = (labels == "big").mean()
    assert abs((labels[rows["validation"]] == "big").mean() - share) < 0.05  # stratified
    data._load_cached.cache_clear()  # really split again
    assert np.array_equal(
        data.load(splits_table(validation=None), tmp_path).rows["validation"], rows["validation"]
    )
    other = data.load(splits_table(validation=None, seed=1), tmp_path)
    assert not np.array_equal(other.rows["validation"], rows["validation"])

    no_test = data.load(splits_table(test=None), tmp_path)
    assert no_test.sizes() == {"train": 80, "validation": 20, "test": 20}
    assert list(no_test.rows["validation"]) == list(range(20))

    # a training file alone is split as a single file is, each split in the file's order
    alone = data.load(splits_table(validation=None, test=None), tmp_path)
    single = data.load(csv_table(path="train.csv"), tmp_path)
    for name in ("train", "validation", "test"):
        assert list(alone.rows[name]) == sorted(single.rows[name])


def test_a_split_column_says_each_rows_split_and_is_no_feature(tmp_path: Path):
    said = [["train", "train", "validation", "train", "test"][i % 5] for i in range(60)]
    rows = [[*r, s] for r, s in zip(houses(), said, strict=True)]
    write_csv(tmp_path, rows, header=[*HEADER, "part"])
    ds = data.load(csv_table(split_column="part"), tmp_path)

    assert not any(name.startswith("part") for name in ds.features)
    assert ds.sizes() == {"train": 36, "validation": 12, "test": 12}
    for name in ("train", "validation", "test"):
        assert list(ds.rows[name]) == [i for i, s in enumerate(said) if s == name]
    assert [ds.classes[i] for i in ds.y_test] == [
        r[3] for r, s in zip(rows, said, strict=True) if s == "test"
    ]

    # no validation row: the validation split is taken from the training rows
    rows = [[*r[:-1], "test" if r[-1] == "test" else "train"] for r in rows]
    write_csv(tmp_path, rows, name="two.csv", header=[*HEADER, "part"])
    ds = data.load(csv_table(path="two.csv", split_column="part"), tmp_path)
    assert ds.sizes() == {"train": 38, "validation": 10, "test": 12}


@pytest.mark.parametrize(
    "cell, message",
    [
        (
            "Train",
            r"houses.csv, line 9: split column 'part' says 'Train'; each row's must be one of train, validation, test\.",
        ),
        (
            "valid",
            r"houses.csv, line 9: split column 'part' says 'valid'; each row's must be one of train, validation, test\.",
        ),
        (
            "1",
            r"houses.csv, line 9: split column 'part' says '1'; each row's must be one of train, validation, test\.",
        ),
        (
            "",
            r"houses.csv: column 'part' has 1 missing value\(s\) \(line 9: ''\)\. Give every row one of train, validation, test\.",
        ),
    ],
)
def test_a_split_column_says_train_validation_or_test_on_every_row(tmp_path: Path, cell, message):
    rows = [[*r, "test" if i % 4 == 0 else "train"] for i, r in enumerate(houses())]
    rows[7][-1] = cell
    write_csv(tmp_path, rows, header=[*HEADER, "part"])
    with pytest.raises(DataError, match=message) as info:
        data.load(csv_table(split_column="part"), tmp_path)
    assert "\n" not in str(info.value)


def test_a_split_column_must_be_there_and_mark_training_rows(tmp_path: Path):
    write_csv(tmp_path, houses())
    with pytest.raises(
        DataError,
        match=r"houses.csv: no split column 'part'; the columns are: size, rooms, district, label, price\. Set \[data\] split_column to one of them\.",
    ):
        data.load(csv_table(split_column="part"), tmp_path)
    write_csv(tmp_path, [[*r, "test"] for r in houses()], header=[*HEADER, "part"])
    with pytest.raises(DataError, match=r"houses.csv: split column 'part' says train on no row"):
        data.load(csv_table(split_column="part"), tmp_path)


@pytest.mark.parametrize(
    "table, message",
    [
        (
            {
                "source": "csv",
                "path": "a.csv",
                "train": "t.csv",
                "target": "y",
                "task": "regression",
            },
            r"s: \[data\] names both path and train; path names one file that autotune splits, while train, validation and test name files that are split already\. Keep one of the two\.",
        ),
        (
            {"source": "npz", "path": "a.npz", "test": "t.npz", "task": "regression"},
            r"s: \[data\] names both path and test; path names one file",
        ),
        (
            {
                "source": "csv",
                "split_column": "part",
                "train": "t.csv",
                "target": "y",
                "task": "regression",
            },
            r"s: \[data\] names both split_column and train; a split column splits the one file that path names, while train, validation and test name files that are split already\.",
        ),
        (
            {
                "source": "csv",
                "validation": "v.csv",
                "test": "t.csv",
                "target": "y",
                "task": "regression",
            },
            r"s: \[data\] validation and test need train, the file of the training split; add for example train = \"train.csv\"\.",
        ),
        (
            {"source": "csv", "target": "y", "task": "regression"},
            r"s: \[data\] source 'csv' needs path \(or train, validation and test: the splits you made\)\.",
        ),
        (
            {
                "source": "csv",
                "path": "a.csv",
                "split_column": "y",
                "target": "y",
                "task": "regression",
            },
            r"s: \[data\] split_column 'y' is also the target; it says each row's split, which is not for a model to learn from or to predict\. Name another column\.",
        ),
        (
            {
                "source": "csv",
                "path": "a.csv",
                "split_column": "p",
                "features": ["a", "p"],
                "target": "y",
                "task": "regression",
            },
            r"s: \[data\] split_column 'p' is also one of the features;",
        ),
        (
            {"source": "npz", "path": "a.npz", "split_column": "p", "task": "regression"},
            r"unknown key\(s\) split_column for source 'npz'",
        ),
        ({"source": "circles", "train": "t.csv"}, r"unknown key\(s\) train for source 'circles'"),
        (
            {"source": "csv", "train": 3, "target": "y", "task": "regression"},
            r"\[data\] train must be of type str, but got 3\.",
        ),
    ],
)
def test_split_keys_that_do_not_go_together_are_refused(table, message):
    with pytest.raises(StudySpecError, match=message):
        data.validate(table, "s")


def unseen_class(rows: list[list]) -> None:
    rows[3][3] = "huge"


@pytest.mark.parametrize(
    "file, change, message",
    [
        (
            "test.csv",
            None,
            r"study.toml: \[data\] test: no file .*test.csv\. Fix the path; a relative one starts at the study file's folder\.",
        ),
        ("val.csv", "", r"val.csv: is empty; it needs a header row of column names"),
        (
            "val.csv",
            "size,rooms,district,label,price\n",
            r"val.csv: has a header but no rows under it",
        ),
        (
            "test.csv",
            "size,district,label,price,note\n50,north,big,1,x\n",
            r"test.csv: the columns differ from those of the training file .*train.csv: missing 'rooms'; extra 'note'\. Give every split file the same columns\.",
        ),
        (
            "test.csv",
            unseen_class,
            r"test.csv: class 'huge' is in the test split but never in the train split \(.*train.csv\); a model cannot learn a class it never sees\.",
        ),
        (
            "val.csv",
            unseen_class,
            r"val.csv: class 'huge' is in the validation split but never in the train split",
        ),
        (
            "test.csv",
            "size,rooms,district,label,price\n50,three,north,big,1\n",
            r"test.csv: column 'rooms' holds text \(line 2: 'three'\), but numbers in the training file .*train.csv; a column holds one kind of value in every split\.",
        ),
        (
            "test.csv",
            "size,rooms,district,label,price\n50,2,7,big,1\n",
            r"test.csv: column 'district' holds numbers only, but text in the training file .*train.csv; a column holds one kind",
        ),
        (
            "val.csv",
            "size,rooms,district,label,price\n50,2,north,big,1\n50,?,north,big,1\n",
            r"val.csv: column 'rooms' has 1 missing value\(s\) \(line 3: '\?'\)",
        ),
    ],
)
def test_bad_split_files_are_one_line_naming_the_file(tmp_path: Path, file, change, message):
    split_files(tmp_path)
    path = tmp_path / file
    if change is None:
        path.unlink()
    elif callable(change):
        rows = houses(20, seed=1)
        change(rows)
        write_csv(tmp_path, rows, name=file)
    else:
        path.write_text(change)
    with pytest.raises(DataError, match=message) as info:
        data.load(splits_table(), tmp_path, where="study.toml")
    assert "\n" not in str(info.value)


def test_npz_split_files(tmp_path: Path):
    rng = np.random.default_rng(0)
    arrays = {name: rng.normal(size=(n, 3)) for name, n in (("train", 60), ("test", 20))}
    for name, x in arrays.items():
        np.savez(tmp_path / f"{name}.npz", x=x, y=np.arange(len(x)) % 2)
    table = {"source": "npz", "train": "train.npz", "test": "test.npz", "task": "classification"}
    ds = data.load(data.validate(table, "s"), tmp_path)
    assert ds.sizes() == {"train": 48, "validation": 12, "test": 20}
    assert list(ds.rows["test"]) == list(range(20)) and list(ds.y_test) == [
        i % 2 for i in range(20)
    ]
    train = arrays["train"][ds.rows["train"]]
    assert np.allclose(
        ds.x_test, (arrays["test"] - train.mean(axis=0)) / train.std(axis=0), atol=1e-5
    )

    np.savez(tmp_path / "wide.npz", x=rng.normal(size=(20, 4)), y=np.arange(20) % 2)
    with pytest.raises(
        DataError,
        match=r"wide.npz: its examples are of shape \(4,\), but those of .*train.npz of shape \(3,\)\. Give every split file examples of one shape\.",
    ):
        data.load(data.validate({**table, "test": "wide.npz"}, "s"), tmp_path)


def test_the_split_files_contents_are_part_of_the_studys_identity(tmp_path: Path):
    import hashlib

    from autotune.spec import from_dict

    from conftest import tiny_raw

    split_files(tmp_path)
    table = {
        "source": "csv",
        "train": "train.csv",
        "test": "test.csv",
        "target": "label",
        "task": "classification",
    }
    spec = from_dict(tiny_raw(data=table), source="s.toml", base=tmp_path)
    assert spec.objective()["data"]["digest"] == {
        name: hashlib.sha256((tmp_path / f"{name}.csv").read_bytes()).hexdigest()
        for name in ("train", "test")
    }
    # computed from the files, never stored in the study file's form
    assert "digest" not in spec.to_dict()["data"]
    before = spec.fingerprint()
    assert from_dict(spec.to_dict()).fingerprint() == before
    with (tmp_path / "train.csv").open("a") as f:
        f.write("50,2,north,big,1\n")
    assert spec.fingerprint() != before
    # data that autotune splits keeps the fingerprint it had
    plain = from_dict(tiny_raw(data={**csv_table(), "path": "train.csv"}), base=tmp_path)
    assert "digest" not in plain.objective()["data"]

    (tmp_path / "test.csv").unlink()
    with pytest.raises(DataError, match=r"s.toml: \[data\] test: no file .*test.csv"):
        spec.fingerprint()


def test_a_resumed_study_names_the_split_file_whose_contents_changed():
    from autotune.data.splits import what_changed

    now = {"train": "train.csv", "test": "test.csv", "digest": {"train": "b", "test": "c"}}
    before = {**now, "digest": {"train": "a", "test": "c"}}
    assert what_changed(before, now) == "data (the contents of train.csv changed)"
    assert what_changed({**before, "test": "old.csv"}, now) == "data"
    assert what_changed({"source": "circles"}, {"source": "moons"}) == "data"
