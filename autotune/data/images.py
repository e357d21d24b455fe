"""Images in class folders: ``source = "images"``, ``path = "photos/"`` with one subfolder per
class (the layout of Keras' ``image_dataset_from_directory``: class names are the subfolders'
names, sorted).

Only the file names are read when the study loads (and each file's first bytes, to tell an
image from anything else); the pixels are read from disk by the ``tf.data`` pipeline as the
trial trains, decoded and resized to ``image_size`` in ``color_mode``, so a folder larger than
memory trains as well as a small one. Pixel values reach the model divided by 255, and the
exported model takes raw pixels (0 to 255) through a ``Rescaling`` layer of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np

# The formats TensorFlow decodes, by their first bytes.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
    b"BM": "bmp",
}
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
RESCALE = 1 / 255


@dataclass(frozen=True)
class Images:
    """How a trial reads an image file into an example.

    Attributes:
        height, width: The size every image is resized to (``image_size``).
        channels: 1, 3 or 4 (``color_mode`` grayscale, rgb, rgba).
    """

    height: int
    width: int
    channels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def decode(self, path: Any, *, rescale: bool = True) -> Any:
        """A ``tf.data`` map: a file's path (a string tensor) to its example, float32 in
        [0, 1] (raw pixel values, 0 to 255, without ``rescale``)."""
        import tensorflow as tf

        image = tf.io.decode_image(
            tf.io.read_file(path), channels=self.channels, expand_animations=False
        )
        image = tf.image.resize(image, (self.height, self.width))
        image.set_shape(self.shape)
        image = tf.cast(image, tf.float32)
        return image * RESCALE if rescale else image

    def read(self, paths: Any, *, rescale: bool = True) -> np.ndarray:
        """The examples of ``paths``, at once, as one array."""
        import numpy as np
        import tensorflow as tf

        if len(paths) == 0:
            return np.zeros((0, *self.shape), np.float32)
        return np.stack([self.decode(tf.constant(str(p)), rescale=rescale).numpy() for p in paths])


def image_files(path: Path, where: str) -> list[Path]:
    """An image file, or every image file under a folder (sorted).

    Raises:
        DataError: No such file or folder, no image in it, or a file that is not an image.
    """
    if path.is_file():
        found = [path]
    elif path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        raise DataError(f"{where}: no file or folder {path}; give an image or a folder of them.")
    for file in found:
        if kind_of_file(file) is None:
            raise DataError(f"{where}: {file} is not an image (PNG, JPEG, GIF or BMP).")
    if not found:
        raise DataError(f"{where}: {path} holds no image.")
    return found


def kind_of_file(path: Path) -> str | None:
    """``png``, ``jpeg``, ``gif`` or ``bmp`` by the file's first bytes; None if none of them."""
    with open(path, "rb") as f:
        head = f.read(8)
    return next((kind for sig, kind in _SIGNATURES.items() if head.startswith(sig)), None)


def scan(folder: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The image files of a folder of class folders, and each file's class (its folder's name).

    Raises:
        DataError: No such folder, no class folders, only one class, a class folder without
            images, or a file that is not an image (named).
    """
    import numpy as np

    label = f"{where}: [data] path '{folder}'"
    if not folder.is_dir():
        raise DataError(
            f"{label} is not a folder. Give the folder that holds one subfolder of images per"
            f" class."
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"{label} has no class subfolders. Put each class's images in a subfolder named"
            f" after the class, e.g. {folder}/cat/1.png and {folder}/dog/2.png."
        )
    if len(classes) < 2:
        raise DataError(
            f"{label} has one class only ('{classes[0]}'), and there is nothing to tell apart."
            f" Add a subfolder of images for each other class."
        )
    paths, labels = [], []
    for name in classes:
        found = 0
        for root, dirs, files in os.walk(folder / name):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(f for f in files if not f.startswith(".")):
                path = Path(root) / file
                if kind_of_file(path) is None:
                    raise DataError(
                        f"{where}: {path} is not an image (PNG, JPEG, GIF or BMP). Move it out"
                        f" of {folder}."
                    )
                paths.append(str(path))
                labels.append(name)
                found += 1
        if not found:
            raise DataError(
                f"{label}: class folder '{name}' holds no image. Add images, or remove it."
            )
    return np.array(paths), np.array(labels)
