"""Writing the files a command was asked for, and nothing else.

- A command refuses a target that exists unless it was given ``--force``, and refuses the
  storage's own SQLite file (and its journal files) always.
- Every file is written to a temporary name in the same folder, flushed to disk, and renamed
  over the target in one step, so a crash, Ctrl-C or a full disk leaves the old file or none,
  never half of one.
- A folder (an exported model) is filled under a temporary name beside the target and renamed
  into place once complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from autotune import storage as storage_module
from autotune.errors import OutputError


def check_target(path: str | os.PathLike[str], *, force: bool, storage: str | None = None) -> Path:
    """Checks that ``path`` may be written.

    Args:
        path: The file or folder to write.
        force: Whether the user asked to replace what is there (``--force``).
        storage: The storage URL; an SQLite file (or its journal) is never a target.

    Raises:
        OutputError: The target is the storage, or exists and ``force`` is not set, or is a
            folder where a file goes (or the other way round).
    """
    target = Path(path)
    if storage is not None and storage_module.is_sqlite(storage):
        database = storage_module.sqlite_path(storage).resolve()
        journals = {database, *(database.with_name(database.name + s) for s in _JOURNALS)}
        if target.resolve() in journals:
            raise OutputError(
                f"{path} is the study storage itself; writing there would destroy every study"
                f" in it. Choose another file."
            )
    if target.exists() and not force:
        raise OutputError(f"{path} exists already. Use --force to replace it, or choose another.")
    return target


_JOURNALS = ("-wal", "-shm", "-journal")


def write_text(path: str | os.PathLike[str], text: str | Iterable[str]) -> None:
    """Writes ``text`` (or its pieces, as they come) to ``path`` all at once: the old file, or
    the whole new one.

    Raises:
        OutputError: The file cannot be written (a missing folder, no permission, a full disk);
            the old file, if any, is left as it was.
    """
    target = Path(path)
    try:
        with _temporary_beside(target, folder=False) as temporary:
            with open(temporary, "w", encoding="utf-8") as file:
                file.writelines([text] if isinstance(text, str) else text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
    except OSError as e:
        raise OutputError(f"Cannot write {path}: {e.strerror or e}.") from e


@contextlib.contextmanager
def new_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path``; when the block ends without error,
    the folder replaces ``path`` (an existing one is removed only then).

    Raises:
        OutputError: The folder cannot be made or moved into place; nothing is left behind.
    """
    target = Path(path)
    try:
        with _temporary_beside(target, folder=True) as temporary:
            yield temporary
            if target.exists():
                old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
                os.replace(target, old / target.name)
                os.replace(temporary, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(temporary, target)
    except OSError as e:
        raise OutputError(f"Cannot write {path}: {e.strerror or e}.") from e


@contextlib.contextmanager
def _temporary_beside(target: Path, *, folder: bool) -> Iterator[Path]:
    """A temporary file or folder in ``target``'s folder (so that the rename is one step on one
    file system), removed if it is still there when the block ends."""
    parent = target.parent if str(target.parent) else Path(".")
    if folder:
        temporary = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.tmp-"))
    else:
        handle, name = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.tmp-")
        os.close(handle)
        temporary = Path(name)
    try:
        yield temporary
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()
