"""A study's report: one self-contained HTML file of Optuna's own plots and the best trials.

The plots come from ``optuna.visualization`` (plotly): the optimization history, the learning
curves (each trial's per-epoch validation metric), the hyperparameter importances and a
parallel-coordinate plot. plotly's JavaScript is embedded once, so the file opens offline.
Where a plot cannot say anything yet (importances need two complete trials whose params
differ), the report holds a note saying so instead.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import files
from autotune.study import counts, ranked

if TYPE_CHECKING:
    import optuna

# How many of the best complete trials the table lists.
TOP_TRIALS = 10
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .summary { color: #555; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff6dc; border-left: 4px solid #e0b030; padding: 0.6em 1em; }
"""


def importance_note(study: optuna.Study) -> str | None:
    """Why the importances cannot be computed yet, or None when they can."""
    complete = ranked(study)
    if len(complete) < 2:
        return (
            f"Hyperparameter importances need at least 2 complete trials; this study has"
            f" {len(complete)}. Run more trials and build the report again."
        )
    varying = {
        name
        for name in {n for t in complete for n in t.params}
        if len({repr(t.params.get(name)) for t in complete}) > 1
    }
    if not varying:
        return (
            "Hyperparameter importances need parameters whose values differ between complete"
            " trials; every complete trial has the same parameters."
        )
    return None


def _importances(study: optuna.Study, target_name: str) -> Any:
    import optuna

    note = importance_note(study)
    if note is not None:
        return note
    try:
        return optuna.visualization.plot_param_importances(study, target_name=target_name)
    except (ValueError, RuntimeError) as e:
        return f"Hyperparameter importances could not be computed: {e}"


def _curves(study: optuna.Study, metric: str) -> Any:
    import optuna

    figure = optuna.visualization.plot_intermediate_values(study)
    # Keras' pruning callback reports epochs counted from 0.
    return figure.update_layout(xaxis_title="Epoch (from 0)", yaxis_title=metric)


def _sections(metric: str) -> list[tuple[str, Callable[[Any], Any]]]:
    """Each section's heading, and what draws it: a plotly figure, or a note (a string)."""
    import optuna.visualization as vis

    return [
        ("Optimization history",
         lambda study: vis.plot_optimization_history(study, target_name=metric)),
        (f"Learning curves ({metric} per epoch)", lambda study: _curves(study, metric)),
        (f"Hyperparameter importances for {metric}",
         lambda study: _importances(study, target_name=metric)),
        ("Parallel coordinates",
         lambda study: vis.plot_parallel_coordinate(study, target_name=metric)),
    ]  # fmt: skip


def build(study: optuna.Study, metric: str | None = None, top: int = TOP_TRIALS) -> str:
    """The report of ``study`` as one HTML document.

    Args:
        study: An ``optuna.Study``.
        metric: The name of the trials' value, for the headings (e.g. ``val_accuracy``); by
            default the study's metric name, which ``autotune run`` sets.
        top: How many of the best complete trials to list.
    """
    import warnings

    metric = metric or (study.metric_names or ["value"])[0]
    tally = counts(study)
    held = f"{tally.total} trials ({tally})" if tally.total else "No trials yet"
    parts = [
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        f'<p class="summary">{held}; {html.escape(metric)}, {study.direction.name.lower()}d.</p>',
    ]
    plotly_js_included = False
    with warnings.catch_warnings():
        # Optuna warns about trials it leaves out of a plot (failed ones, missing params).
        warnings.simplefilter("ignore")
        for title, plot in _sections(metric):
            parts.append(f"<h2>{html.escape(title)}</h2>")
            figure = plot(study)
            if isinstance(figure, str):
                parts.append(f'<p class="note">{html.escape(figure)}</p>')
                continue
            parts.append(figure.to_html(full_html=False, include_plotlyjs=not plotly_js_included))
            plotly_js_included = True
    parts.append(f"<h2>Best trials</h2>{best_table(study, metric, top)}")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>autotune report: {html.escape(study.study_name)}</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def best_table(study: optuna.Study, metric: str, top: int = TOP_TRIALS) -> str:
    """An HTML table of the ``top`` best complete trials, or a note when there is none."""
    best = ranked(study, top)
    if not best:
        return '<p class="note">No trial has completed yet.</p>'
    head = ["rank", "trial", metric, "epochs", "best epoch", "stopped", "seconds", "params"]
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for rank, t in enumerate(best, start=1):
        attrs = t.user_attrs
        cells = [rank, t.number, f"{t.value:.4f}", attrs.get("epochs", "-"),
                 attrs.get("best_epoch", "-"), attrs.get("stop_reason", "-"),
                 attrs.get("seconds", "-")]  # fmt: skip
        params = html.escape(json.dumps(t.params))
        rows.append(
            "<tr>"
            + "".join(f'<td class="num">{html.escape(str(c))}</td>' for c in cells)
            + f"<td><code>{params}</code></td></tr>"
        )
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def write(
    study: optuna.Study,
    path: str | Path,
    metric: str | None = None,
    top: int = TOP_TRIALS,
    *,
    force: bool = False,
    storage: str | None = None,
) -> Path:
    """Writes :func:`build`'s report to ``path``, all at once, and returns the path.

    Args:
        force: Replace ``path`` if it exists.
        storage: The study's storage URL, which is never overwritten.

    Raises:
        OutputError: ``path`` exists (without ``force``), is the storage, or cannot be written.
    """
    path = files.check_target(path, force=force, storage=storage)
    files.write_text(path, build(study, metric, top))
    return path


def default_path(study_name: str) -> str:
    """``NAME-report.html`` in the current folder, whatever characters the name holds."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", study_name)[:128] + "-report.html"
