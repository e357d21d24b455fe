"""autotune's exceptions.

Every mistake a user can make (a bad study file, an unknown name, a storage that cannot be
reached) raises a subclass of :class:`AutotuneError` whose message is one line naming the
problem and the fix. Only the CLI turns them into exit codes.
"""


class AutotuneError(Exception):
    """Base class of autotune's own errors: the message is meant for the user as is."""


class StudySpecError(AutotuneError):
    """A study file, or a value given for one of its keys, is not valid."""


class StorageError(AutotuneError):
    """A storage URL is malformed, its driver is missing, or its server cannot be reached."""


class StudyMismatchError(AutotuneError):
    """The stored study was searched with another space, data set, model or metric."""


class ModelError(AutotuneError):
    """A user's model family cannot be loaded, or its builder fails or returns no keras.Model."""


class DataError(AutotuneError):
    """A data set cannot be read, or cannot be used as it is (a missing column or value)."""


class TrialDiverged(Exception):
    """A trial's loss became NaN or infinite; that trial fails and the search goes on.

    Deliberately not an :class:`AutotuneError`: it is caught by the optimize loop, never shown
    as a fatal error.
    """
