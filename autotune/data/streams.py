"""Your own ``tf.data`` pipelines: a ``[data] source = "data.py:load"`` function may return
``{"train": ..., "validation": ..., "test": ...}``, three ``tf.data.Dataset`` of **unbatched**
``(x, y)`` elements: ``x`` one example (a tensor of a fixed shape), ``y`` its label (an integer
or a string for classification, a number for regression).

autotune batches them at each trial's sampled batch size, and shuffles the training stream
by the trial's seed (a buffer of up to :data:`SHUFFLE_BUFFER` elements, reshuffled each epoch).
When the study loads, each stream is read once for its labels and its length, so the
validation and test streams must give their elements in the same order on every pass; what
the training stream does to its examples (augmentation, say) happens anew each epoch, as the
pipeline says. The labels of classification become class indices in the order of the sorted
labels of the training stream. A trial that goes on from a checkpoint sees the same examples,
but not necessarily in the order an uninterrupted trial would (the shuffle is the stream's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune.data.schema import CLASSIFICATION
from autotune.errors import DataError

if TYPE_CHECKING:
    import numpy as np

SPLITS = ("train", "validation", "test")
SHUFFLE_BUFFER = 10_000


@dataclass(frozen=True)
class Streams:
    """The three streams, their labels mapped (class indices, or float32 values)."""

    train: Any
    validation: Any
    test: Any

    def of(self, split: str) -> Any:
        return {"train": self.train, "validation": self.validation, "test": self.test}[split]

    def read(self, n: int) -> np.ndarray:
        """The first ``n`` training examples, as one array."""
        import numpy as np

        if n == 0:
            return np.zeros((0, *self.train.element_spec[0].shape), np.float32)
        x, _ = next(iter(self.train.take(n).batch(n)))
        return x.numpy()


def is_streams(result: Any) -> bool:
    """Whether a data function returned streams rather than ``(X, y)``."""
    return isinstance(result, Mapping)


def check(result: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The three streams of a data function's result, checked.

    Raises:
        DataError: A split missing or not a ``tf.data.Dataset``; elements not ``(x, y)``; a
            batched stream; an example shape not fixed, or differing between splits.
    """
    import tensorflow as tf

    missing = [name for name in SPLITS if name not in result]
    extra = sorted(set(result) - set(SPLITS))
    if missing or extra:
        raise DataError(
            f"{label} returned streams for {', '.join(sorted(result)) or 'nothing'}; return"
            f' {{"train": ..., "validation": ..., "test": ...}}, three tf.data.Dataset.'
        )
    shapes = {}
    for name in SPLITS:
        stream = result[name]
        if not isinstance(stream, tf.data.Dataset):
            raise DataError(
                f"{label} returned {type(stream).__name__} for '{name}', not a tf.data.Dataset."
            )
        spec = stream.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise DataError(
                f"{label}: the '{name}' stream's elements are not (x, y) pairs. Map them to"
                f" (example, label), e.g. .map(lambda e: (e['image'], e['label']))."
            )
        x, y = spec
        if x.shape.rank is None or (x.shape.rank and x.shape[0] is None) or y.shape.rank:
            raise DataError(
                f"{label}: the '{name}' stream looks batched (x {x.shape}, y {y.shape}): give"
                f" one example per element, without .batch(); autotune batches at each trial's"
                f" sampled batch size."
            )
        if not x.shape.is_fully_defined():
            raise DataError(
                f"{label}: the '{name}' stream's examples have no fixed shape ({x.shape}); give"
                f" every example the same shape (resize or pad them)."
            )
        shapes[name] = tuple(x.shape)
    if len(set(shapes.values())) > 1:
        raise DataError(
            f"{label}: the streams' examples differ in shape: "
            + ", ".join(f"{n} {s}" for n, s in shapes.items())
            + ". Give them all the same shape."
        )
    return dict(result)


def labels(stream: Any) -> np.ndarray:
    """All the labels of a stream, read once (text as ``str``)."""
    import numpy as np

    read = [y for y in stream.map(lambda x, y: y).batch(4096).as_numpy_iterator()]
    found = np.concatenate(read) if read else np.zeros(0)
    if found.dtype.kind in "OS":  # text labels come as bytes
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in found])
    return found


def mapped(streams: dict[str, Any], task: str, classes: np.ndarray | None) -> Streams:
    """The streams with their labels as the model takes them: class indices, or float32."""
    import tensorflow as tf

    if task != CLASSIFICATION:
        out = {k: s.map(lambda x, y: (x, tf.cast(y, tf.float32))) for k, s in streams.items()}
        return Streams(**out)
    assert classes is not None
    text = classes.dtype.kind in "USO"
    keys = tf.constant([str(c) for c in classes] if text else classes.astype("int64"))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(classes), dtype=tf.int64)), -1
    )

    def index(x: Any, y: Any) -> Any:
        key = tf.strings.as_string(y) if text and y.dtype != tf.string else y
        return x, tf.cast(table.lookup(key if text else tf.cast(y, tf.int64)), tf.int32)

    return Streams(**{k: s.map(index) for k, s in streams.items()})
