"""Writes scikit-learn's bundled digits (1,797 images of 8x8 pixels, 10 classes) as PNG files
into one folder per class, the layout ``source = "images"`` reads:

    python examples/digits_png/make_images.py          # writes examples/digits_png/images/

Pixel values 0 to 16 become 0 to 255 (grayscale). Existing files are left as they are.
"""

from __future__ import annotations

import sys
from pathlib import Path


def write(folder: Path) -> int:
    """Writes the images under ``folder``; returns how many it wrote."""
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    pixels = np.clip(np.round(x * 255 / 16), 0, 255).astype(np.uint8).reshape(-1, 8, 8, 1)
    written = 0
    for index, (image, label) in enumerate(zip(pixels, y, strict=True)):
        path = folder / str(label) / f"{index:04d}.png"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png(image).numpy())
        written += 1
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "images"
    print(f"wrote {write(target)} images into {target}")
