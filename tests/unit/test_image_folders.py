"""A folder of class folders of images, scanned without TensorFlow: what it holds, and every
mistake in it as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.data import images, validate
from autotune.errors import DataError, StudySpecError

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16  # a PNG's signature is all the scan reads


def folder_of(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_the_scan_lists_each_image_with_its_folders_class_in_sorted_order(tmp_path: Path):
    root = folder_of(tmp_path, {"dog/b.png": PNG, "cat/a.png": PNG, "dog/a.jpg": b"\xff\xd8\xff"})
    paths, labels = images.scan(root, "s.toml")
    assert [Path(p).relative_to(root).as_posix() for p in paths] == [
        "cat/a.png",
        "dog/a.jpg",
        "dog/b.png",
    ]
    assert labels.tolist() == ["cat", "dog", "dog"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {},
            "has no class subfolders. Put each class's images in a subfolder named after the class",
        ),
        ({"cat/a.png": PNG}, "has one class only ('cat'), and there is nothing to tell apart."),
        (
            {"cat/a.png": PNG, "dog/notes.txt": b"a dog"},
            "dog/notes.txt is not an image (PNG, JPEG, GIF or BMP). Move it out of",
        ),
        (
            {"cat/a.png": PNG, "dog/.keep": b""},
            "class folder 'dog' holds no image. Add images, or remove it.",
        ),
    ],
)
def test_every_mistake_in_the_folder_is_one_line(tmp_path: Path, files: dict, message: str):
    (tmp_path / "photos").mkdir()
    root = folder_of(tmp_path / "photos", files)
    with pytest.raises(DataError) as caught:
        images.scan(root, "s.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_folder_is_one_line(tmp_path: Path):
    with pytest.raises(DataError, match=r"s\.toml: \[data\] path '.*nowhere' is not a folder\."):
        images.scan(tmp_path / "nowhere", "s.toml")


def test_the_images_table_takes_a_size_and_a_color_mode():
    table = validate({"source": "images", "path": "photos"}, "s.toml")
    assert (table["image_size"], table["color_mode"]) == ([64, 64], "rgb")
    with pytest.raises(StudySpecError, match=r"image_size must be \[height, width\] in pixels"):
        validate({"source": "images", "path": "p", "image_size": [8]}, "s.toml")
    with pytest.raises(StudySpecError, match="color_mode must be one of grayscale, rgb, rgba"):
        validate({"source": "images", "path": "p", "color_mode": "cmyk"}, "s.toml")
