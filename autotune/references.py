"""A user's own code, named in a study file: ``"package.module:name"`` or ``"file.py:name"``.

A model family (``model = "model.py:build"``) and a data source (``source = "data.py:load"``)
point at user code this way. A file path is relative to the study file's folder, or absolute;
a module is imported from the installed packages, then from the study file's folder. A file is
imported again when it changed, so a notebook sees the user's edits.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from autotune.errors import AutotuneError

# resolved file path -> (modification time, module)
_FILES: dict[str, tuple[int, ModuleType]] = {}


def is_reference(text: str) -> bool:
    """Whether a study file's value names user code rather than a built-in name."""
    return ":" in text


def load(
    reference: str, folder: str | os.PathLike[str], *, label: str, error: type[AutotuneError]
) -> tuple[Any, ModuleType]:
    """Imports the module that ``reference`` names and returns the object it names, and the module.

    Args:
        reference: ``"package.module:name"`` or ``"path/to/file.py:name"``.
        folder: Where a relative file path starts, and where modules are looked for last.
        label: Starts every error message, e.g. ``"study.toml: model 'model.py:build'"``.
        error: The exception to raise.

    Raises:
        AutotuneError: ``error``, when the reference is malformed, the file or module is missing,
            importing it raises, or it has no such name.
    """
    where, _, name = reference.rpartition(":")
    if not where or not name.isidentifier():
        raise error(
            f"{label} must be 'package.module:function' or 'path/to/file.py:function', but got"
            f" '{reference}'."
        )
    folder = Path(folder or ".").absolute()
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _import_file(folder / Path(where).expanduser(), label, error)
    else:
        module = _import_module(where, folder, label, error)
    namespace = vars(module)
    if name not in namespace:
        defined = sorted(
            attr
            for attr, value in namespace.items()
            if callable(value)
            and not attr.startswith("_")
            and getattr(value, "__module__", "") == module.__name__
        )
        raise error(
            f"{label}: {where} has no '{name}'"
            + (f"; it defines {', '.join(defined)}" if defined else "")
            + ". Fix the name after the colon."
        )
    return namespace[name], module


def check_signature(
    function: Any, arguments: tuple[str, ...], *, label: str, error: type[AutotuneError]
) -> None:
    """Checks that ``function`` is callable with ``arguments``, before the study calls it.

    Raises:
        AutotuneError: ``error``, naming the arguments the function must take.
    """
    if not callable(function):
        raise error(f"{label} is a {type(function).__name__}, not a function.")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no signature to read
        return
    try:
        signature.bind(*arguments)
    except TypeError as e:
        raise error(
            f"{label} must take ({', '.join(arguments)}), but it takes {signature}. Change its"
            f" arguments."
        ) from e


def describe(exception: BaseException, filename: str | None = None) -> str:
    """One line for an exception raised in user code: its type, its message, and the line of
    ``filename`` (the user's file) it was raised from."""
    message = next((line.strip() for line in str(exception).splitlines() if line.strip()), "")
    # TensorFlow wraps its messages in the op's internal names.
    message = re.sub(r"\s*\[Op:\w+\].*$", "", re.sub(r"^\{\{.*?\}\}\s*", "", message))
    if len(message) > 300:
        message = message[:297] + "..."
    text = f"{type(exception).__name__}: {message}" if message else type(exception).__name__
    if filename:
        frames = traceback.extract_tb(exception.__traceback__)
        lines = [f.lineno for f in frames if f.filename == filename]
        if lines:
            text += f" ({Path(filename).name}, line {lines[-1]})"
    return text


def _import_file(path: Path, label: str, error: type[AutotuneError]) -> ModuleType:
    if not path.is_file():
        raise error(
            f"{label}: no file {path}. Fix the path; a relative one starts at the study file's"
            f" folder."
        )
    key = str(path.resolve())
    mtime = path.stat().st_mtime_ns
    cached = _FILES.get(key)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"autotune_user_{stem}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise error(f"{label}: {path} cannot be imported as Python. Name a .py file.")
    module = importlib.util.module_from_spec(spec)
    # Its siblings are importable from it, as when the user runs the file themselves.
    _add_to_path(path.parent)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise error(
            f"{label}: importing {path.name} raised {describe(e, str(path))}. Fix the file."
        ) from e
    _FILES[key] = (mtime, module)
    return module


def _import_module(name: str, folder: Path, label: str, error: type[AutotuneError]) -> ModuleType:
    _add_to_path(folder)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            raise error(
                f"{label}: no module '{name}' is installed or in {folder}. Install it, or name its"
                f" file instead, as 'path/to/file.py:function'."
            ) from e
        raise error(f"{label}: importing {name} raised {describe(e)}. Fix the module.") from e
    except Exception as e:
        raise error(
            f"{label}: importing {name} raised {describe(e, _origin(name))}. Fix the module."
        ) from e


def _origin(name: str) -> str | None:
    """The file of module ``name``, without importing it again if its package is broken."""
    try:
        found = importlib.util.find_spec(name)
    except Exception:
        return None
    return found.origin if found else None


def _add_to_path(folder: Path) -> None:
    # Appended, not prepended: a user's file must not hide an installed package of the same name.
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
