"""The preprocessing fitted on the training split, kept on the data set as plain data."""

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from autotune import data
from autotune.data.preprocess import Column, Preprocessing, input_name, of_columns


def write_houses(folder: Path, n: int = 60) -> Path:
    """Sizes and rooms (numbers), a constant floor, a district (text) and a class label."""
    rng = np.random.default_rng(0)
    path = folder / "houses.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["size", "district", "floor", "rooms", "label"])
        for i in range(n):
            size = round(float(rng.uniform(30, 150)), 1)
            district = ["north", "south", "east"][i % 3]
            writer.writerow(
                [size, district, 2, int(rng.integers(1, 6)), "big" if size > 90 else "small"]
            )
    return path


def raw_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        header, *rows = csv.reader(f)
    return header, rows


def houses_table(**overrides) -> dict:
    table = {"source": "csv", "path": "houses.csv", "target": "label", "task": "classification"}
    return data.validate({**table, **overrides}, "study.toml")


def test_a_csv_keeps_each_columns_scaling_and_categories_in_input_order(tmp_path: Path):
    path = write_houses(tmp_path)
    ds = data.load(houses_table(), tmp_path)
    header, rows = raw_rows(path)
    train = [rows[i] for i in ds.rows["train"]]
    numbers = np.array(
        [[float(r[header.index(c)]) for c in ("size", "floor", "rooms")] for r in train]
    )
    prep = ds.preprocessing
    scaler = StandardScaler().fit(numbers)
    assert [(c.name, c.type) for c in prep.columns] == [
        ("size", "number"),
        ("district", "text"),
        ("floor", "number"),
        ("rooms", "number"),
    ]
    size, district, floor, rooms = prep.columns
    # the scaler's figures, but for the reader's rounding to float32 (less a shift; see below)
    assert [size.mean, floor.mean, rooms.mean] == pytest.approx(scaler.mean_, rel=1e-7)
    assert [size.scale, floor.scale, rooms.scale] == pytest.approx(scaler.scale_, rel=1e-7)
    assert floor.scale == 1.0  # a constant column is not divided by zero
    assert district.categories == ("east", "north", "south")
    assert prep.shape == () and prep.reshape is None
    # the training arrays are those numbers less the shift, rounded to the type the reader gave
    # them, and standardized in it, as the exported model computes them
    x, real = ds.x_train, np.dtype(prep.dtype).type
    shifted = (numbers[:, 0] - size.shift).astype(prep.dtype)
    standardized = (shifted - real(size.mean - size.shift)) / real(size.scale)
    assert np.array_equal(x[:, 0], standardized.astype(np.float32))
    assert np.array_equal(
        x[:, 1:4], np.array([[r[1] == c for c in district.categories] for r in train], np.float32)
    )
    assert ds.features == (
        "size",
        "district=east",
        "district=north",
        "district=south",
        "floor",
        "rooms",
    )


def test_the_rows_of_each_split_are_the_source_rows(tmp_path: Path):
    path = write_houses(tmp_path)
    ds = data.load(houses_table(features=["size"]), tmp_path)
    header, rows = raw_rows(path)
    assert sorted(np.concatenate([ds.rows[s] for s in ("train", "validation", "test")])) == list(
        range(60)
    )
    assert {s: len(ds.rows[s]) for s in ds.rows} == ds.sizes()
    labels = [rows[i][header.index("label")] for i in ds.rows["test"]]
    assert [ds.classes[i] for i in ds.y_test] == labels


def test_arrays_keep_the_per_value_scaling_and_the_reshape():
    ds = data.load(data.validate({"source": "digits", "reshape": [8, 8, 1]}, "s"))
    prep = ds.preprocessing
    assert prep.columns == () and prep.shape == (64,) and prep.reshape == (8, 8, 1)
    assert len(prep.mean) == len(prep.scale) == 64
    assert prep.scale[0] == 1.0  # the first pixel is always blank
    assert ds.input_shape == (8, 8, 1)
    assert prep.as_dict()["reshape"] == [8, 8, 1] and prep.as_dict()["shape"] == [64]


def test_text_columns_only_are_not_scaled(tmp_path: Path):
    write_houses(tmp_path)
    ds = data.load(houses_table(features=["district"]), tmp_path)
    assert ds.preprocessing.columns == (
        Column("district", "text", categories=("east", "north", "south")),
    )


def test_one_hot_columns_go_to_the_text_column_whose_name_is_their_longest_prefix():
    prep = of_columns(
        ["a", "a=b", "n"], ["a=x", "a=b=y", "a=b=z", "n"], [3], mean=[2.0], scale=[0.5]
    )
    assert prep.columns == (
        Column("a", "text", categories=("x",)),
        Column("a=b", "text", categories=("y", "z")),
        Column("n", "number", mean=2.0, scale=0.5),
    )


def test_the_preprocessing_as_plain_data():
    prep = Preprocessing(
        columns=(
            Column("n", "number", 1.5, 2.0, shift=1.0),
            Column("t", "text", categories=("a", "b")),
        )
    )
    assert prep.as_dict() == {
        "columns": [
            {"name": "n", "type": "number", "mean": 1.5, "scale": 2.0, "shift": 1.0},
            {"name": "t", "type": "text", "categories": ["a", "b"]},
        ],
        "dtype": "float32",
    }


@pytest.mark.parametrize("name, expected", [("size", "size"), ("m/s", "m_s"), ("a b", "a b")])
def test_input_names_are_the_column_names_keras_accepts(name, expected):
    assert input_name(name) == expected
