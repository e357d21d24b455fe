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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import files

if TYPE_CHECKING:
    import optuna

COLUMNS = ("number", "state", "value", "params", "epochs", "stop_reason", "seconds",
           "datetime_start", "datetime_complete", "duration")  # fmt: skip


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's trials as plain rows, in trial order.

    Times are ISO 8601 strings; ``duration`` is in seconds; missing values are None.
    """
    out = []
    for t in study.get_trials(deepcopy=False):
        start, complete = t.datetime_start, t.datetime_complete
        out.append({
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
        })  # fmt: skip
    return out


def to_json(table: list[dict[str, Any]]) -> str:
    """The rows as a JSON array of objects."""
    return json.dumps(table, indent=2) + "\n"


def to_csv(table: list[dict[str, Any]]) -> str:
    """The rows as CSV, one ``params_NAME`` column per parameter, in the order first seen."""
    names: dict[str, None] = {}
    for row in table:
        names.update(dict.fromkeys(row["params"]))
    header = [c for c in COLUMNS if c != "params"]
    at = header.index("value") + 1
    header[at:at] = [f"params_{n}" for n in names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in table:
        flat = {k: v for k, v in row.items() if k != "params"}
        flat.update({f"params_{n}": v for n, v in row["params"].items()})
        writer.writerow(flat)
    return buffer.getvalue()


FORMATS = {"csv": to_csv, "json": to_json}


def render(study: optuna.Study, fmt: str) -> str:
    """The study's trials in ``fmt``, one of :data:`FORMATS`."""
    return FORMATS[fmt](rows(study))


def write(
    study: optuna.Study,
    fmt: str,
    path: str | Path,
    *,
    force: bool = False,
    storage: str | None = None,
) -> int:
    """Writes :func:`render`'s table to ``path``, all at once, and returns the number of trials.

    Args:
        force: Replace ``path`` if it exists.
        storage: The study's storage URL, which is never overwritten.

    Raises:
        OutputError: ``path`` exists (without ``force``), is the storage, or cannot be written.
    """
    target = files.check_target(path, force=force, storage=storage)
    table = rows(study)
    files.write_text(target, FORMATS[fmt](table))
    return len(table)
