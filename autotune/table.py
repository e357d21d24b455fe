"""A study's trials as a table, in CSV or JSON, for spreadsheets, notebooks and scripts.

One row per trial: its number, state, value, params, the epochs it trained and why it stopped,
its wall time as autotune measured it, and Optuna's start and completion times and duration.
In CSV each parameter gets its own ``params_NAME`` column (as in Optuna's
``trials_dataframe``), empty where a trial does not use it; in JSON ``params`` is an object.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import files
from autotune.study import pages, param_names, trial_count

if TYPE_CHECKING:
    import optuna

COLUMNS = ("number", "state", "value", "params", "epochs", "stop_reason", "seconds",
           "datetime_start", "datetime_complete", "duration")  # fmt: skip


def _row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    start, complete = t.datetime_start, t.datetime_complete
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value,
        "params": dict(t.params),
        "epochs": t.user_attrs.get("epochs"),
        "stop_reason": t.user_attrs.get("stop_reason"),
        "seconds": t.user_attrs.get("seconds"),
        "datetime_start": start.isoformat() if start else None,
        "datetime_complete": complete.isoformat() if complete else None,
        "duration": (complete - start).total_seconds() if start and complete else None,
    }


def rows(study: optuna.Study) -> Iterator[dict[str, Any]]:
    """The study's trials as plain rows, in trial order, read a page at a time (a study of
    100,000 trials is written in bounded memory).

    Times are ISO 8601 strings; ``duration`` is in seconds; missing values are None.
    """
    for page in pages(study):
        yield from map(_row, page)


def to_json(study: optuna.Study) -> Iterator[str]:
    """The rows as a JSON array of objects, in pieces."""
    yield "["
    i = -1
    for i, row in enumerate(rows(study)):
        text = json.dumps(row, indent=2).replace("\n", "\n  ")
        yield f"{',' if i else ''}\n  {text}"
    yield "]\n" if i < 0 else "\n]\n"


def to_csv(study: optuna.Study) -> Iterator[str]:
    """The rows as CSV, in pieces: one ``params_NAME`` column per parameter, in the order the
    trials first used them."""
    header = [c for c in COLUMNS if c != "params"]
    at = header.index("value") + 1
    header[at:at] = [f"params_{n}" for n in param_names(study)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(rows(study)):
        flat = {k: v for k, v in row.items() if k != "params"}
        flat.update({f"params_{n}": v for n, v in row["params"].items()})
        writer.writerow(flat)
        if i % 1000 == 999:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


FORMATS = {"csv": to_csv, "json": to_json}


def render(study: optuna.Study, fmt: str) -> Iterator[str]:
    """The study's trials in ``fmt``, one of :data:`FORMATS`, in pieces."""
    return FORMATS[fmt](study)


def write(
    study: optuna.Study,
    fmt: str,
    path: str | Path,
    *,
    force: bool = False,
    storage: str | None = None,
) -> int:
    """Writes :func:`render`'s table to ``path``, all at once (the whole file or none), and
    returns the number of trials.

    Args:
        force: Replace ``path`` if it exists.
        storage: The study's storage URL, which is never overwritten.

    Raises:
        OutputError: ``path`` exists (without ``force``), is the storage, or cannot be written.
    """
    target = files.check_target(path, force=force, storage=storage)
    files.write_text(target, render(study, fmt))
    return trial_count(study)
