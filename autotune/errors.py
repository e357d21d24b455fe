"""Every exception autotune raises.

Two families, kept apart on purpose:

- :class:`AutotuneError` and its subclasses are **fatal**: a mistake in a study file, a model or
  data set that cannot be used, a storage that cannot be reached, a search that cannot go on.
  The message is one line naming the problem and the fix; the CLI prints it as ``Error: ...``
  and exits with 1, and a Python caller catches the subclass it cares about. The cause, if any,
  is chained (``raise ... from e``), so ``--debug`` and a notebook keep the traceback.
- :class:`TrialFailed` and its subclasses end **one trial**: this configuration diverged, ran out
  of memory, or made the user's builder or training code raise. The trial is recorded as FAIL
  with its reason and the traceback text, and the search goes on; only a streak of failures in
  a row (:data:`autotune.runner.MAX_CONSECUTIVE_FAILURES`) stops it, as :class:`SearchFailedError`.

:class:`Interrupted` (Ctrl-C) is neither: it is a ``KeyboardInterrupt``, so ``except
AutotuneError`` or ``except Exception`` never swallows it.
"""

from __future__ import annotations


class AutotuneError(Exception):
    """Base class of autotune's fatal errors: the message is meant for the user as is."""


class StudySpecError(AutotuneError):
    """A study file, or a value given for one of its keys, is not valid."""


class StorageError(AutotuneError):
    """A storage URL is malformed, its driver is missing, or its server cannot be reached."""


class StudyNotFoundError(AutotuneError):
    """No study of that name is in the storage, or the storage does not exist yet."""


class StudyMismatchError(AutotuneError):
    """The stored study was searched with another space, data set, model or metric, or was not
    made by autotune."""


class NoCompleteTrialError(AutotuneError):
    """The study has no complete trial, so it has no best trial or best model yet."""


class ModelError(AutotuneError):
    """A user's model family cannot be loaded, or its builder returns no ``keras.Model``, or the
    model cannot be trained on the data at all (checked before the first trial), or a folder
    holds no model that ``autotune best --export`` wrote."""


class DataError(AutotuneError):
    """A data set cannot be read, or cannot be used as it is (a missing column or value)."""


class OutputError(AutotuneError):
    """A file or folder a command writes is there already (without ``--force``), is the
    storage itself, or cannot be written."""


class SearchFailedError(AutotuneError):
    """Too many trials in a row failed: the space, the model or the data is broken."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; finished trials are kept. The message says how to resume.

    Attributes:
        trial: The number of the trial that Ctrl-C cut short (queued to run again), or None.
    """

    def __init__(self, message: str = "Stopped by Ctrl-C.", trial: int | None = None) -> None:
        super().__init__(message)
        self.trial = trial


class TrialFailed(Exception):
    """One trial failed; it is recorded as FAIL and the search goes on.

    Attributes:
        reason: The trial's ``stop_reason`` (``failed``, ``diverged``, ``oom``).
    """

    reason = "failed"


class TrialDiverged(TrialFailed):
    """A trial's loss or metric became NaN or infinite."""

    reason = "diverged"


class TrialOutOfMemory(TrialFailed):
    """A trial ran out of memory (TensorFlow's ``ResourceExhaustedError``, a ``MemoryError``)."""

    reason = "oom"
