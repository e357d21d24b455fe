"""A study's report: one self-contained HTML file of Optuna's own plots and the best trials.

The plots come from ``optuna.visualization`` (plotly): the optimization history, the learning
curves (each trial's per-epoch validation metric), the hyperparameter importances and a
parallel-coordinate plot. plotly's JavaScript is embedded once, so the file opens offline.
Where a plot cannot say anything yet (importances need two complete trials whose params
differ), the report holds a note saying so instead.

A study of more than :data:`LARGE` trials gets the same sections drawn so that the report's
time, memory and size stay bounded (Optuna's plots read every trial whole, several times over,
and draw one line per trial), each with a line under it saying what it shows:

- the optimization history: every complete trial's value and the best so far, from one lean
  query of number, state and value (no trial read whole);
- the learning curves: the best :data:`CURVES` trials' curves, over the median and
  interquartile band per epoch of every trial's values, read as a stream of (epoch, value);
- the importances (PED-ANOVA) and parallel coordinates: on a sample of at most :data:`SAMPLE`
  complete trials, the best :data:`SAMPLE_BEST` and a seeded uniform draw of the rest, read
  whole, a chunk at a time, into a study in memory.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from autotune import files
from autotune import storage as storage_module
from autotune.study import all_trials, counts, ranked, trial_count, trials_by_id

if TYPE_CHECKING:
    import numpy as np
    import optuna

# How many of the best complete trials the table lists.
TOP_TRIALS = 10
# Past this many trials the report takes the bounded path (see the module's text). Optuna's own
# plots cost about 19 s and 270 MB at 1,000 trials and 29 s at 2,000 (2 cores), mostly in the
# importance plot, which deep-copies every trial once per parameter; a study of up to 1,000
# trials keeps their exact plots.
LARGE = 1_000
# The best trials whose own learning curves a large study's report draws.
CURVES = 20
# The most complete trials the importances and parallel coordinates of a large study see: the
# best SAMPLE_BEST and a uniform draw of the rest. With PED-ANOVA's default target quantile
# (10%), its "good" trials are then exactly the study's best SAMPLE_BEST.
SAMPLE = 1_000
SAMPLE_BEST = 100
SAMPLE_SEED = 0
# Trials read whole per query when loading the sample; rows per fetch of a streamed read.
_CHUNK = 500
_ROWS = 50_000
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .summary { color: #555; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff6dc; border-left: 4px solid #e0b030; padding: 0.6em 1em; }
.about { color: #555; font-size: 0.9em; margin-top: 0; }
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


class Section(NamedTuple):
    """One section of the report: its heading; a plotly figure, or a note (a string) in its
    place; and, under a large study's plots, what the figure shows."""

    title: str
    figure: Any
    about: str | None = None


def sections(study: optuna.Study, metric: str) -> Iterator[Section]:
    """The report's plots, drawn one at a time: Optuna's own on a study of up to :data:`LARGE`
    trials, the bounded ones (see the module's text) past it."""
    if trial_count(study) > LARGE:
        yield from _large_sections(study, metric)
        return
    for title, plot in _sections(metric):
        yield Section(title, plot(study))


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
        for title, figure, about in sections(study, metric):
            parts.append(f"<h2>{html.escape(title)}</h2>")
            if isinstance(figure, str):
                parts.append(f'<p class="note">{html.escape(figure)}</p>')
                continue
            parts.append(figure.to_html(full_html=False, include_plotlyjs=not plotly_js_included))
            plotly_js_included = True
            if about is not None:
                parts.append(f'<p class="about">{html.escape(about)}</p>')
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


# A large study: lean reads, bounded plots.


@dataclass(frozen=True)
class Columns:
    """A study's trials as columns, by number: each one's id, number, whether it completed,
    and its value (NaN where it has none)."""

    ids: np.ndarray
    numbers: np.ndarray
    complete: np.ndarray
    values: np.ndarray


def columns(study: optuna.Study) -> Columns:
    """Every trial's id, number, state and value: one query on a database, no trial read whole
    (pruned trials keep their last epoch's value in Optuna's table; the state tells them apart).
    """
    import numpy as np
    from optuna.trial import TrialState

    ids: list[int] = []
    numbers: list[int] = []
    complete: list[bool] = []
    values: list[float] = []
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        for t in all_trials(study):
            ids.append(t._trial_id)
            numbers.append(t.number)
            complete.append(t.state == TrialState.COMPLETE)
            values.append(float("nan") if t.value is None else t.value)
    else:
        import sqlalchemy as sa
        from optuna.storages._rdb import models

        trials = models.TrialModel.__table__
        stored = models.TrialValueModel.__table__
        query = (
            sa.select(trials.c.trial_id, trials.c.number, trials.c.state, stored.c.value,
                      stored.c.value_type)
            .outerjoin(stored, sa.and_(stored.c.trial_id == trials.c.trial_id,
                                       stored.c.objective == 0))
            .where(trials.c.study_id == study._study_id)
            .order_by(trials.c.number)
        )  # fmt: skip
        to_value = models.TrialValueModel.stored_repr_to_value
        with rdb.engine.connect() as connection:
            for trial_id, number, state, value, kind in connection.execute(query):
                ids.append(trial_id)
                numbers.append(number)
                complete.append(state == TrialState.COMPLETE)
                values.append(float("nan") if kind is None else to_value(value, kind))
    return Columns(
        np.array(ids, dtype=np.int64),
        np.array(numbers, dtype=np.int64),
        np.array(complete, dtype=bool),
        np.array(values, dtype=np.float64),
    )


def epoch_values(study: optuna.Study) -> tuple[np.ndarray, np.ndarray, int]:
    """Every finite per-epoch value of every trial, as two arrays (epochs, values), and how
    many trials reported any. A database streams the rows into NumPy a block at a time."""
    import itertools

    import numpy as np

    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        trials = all_trials(study)
        pairs = [
            (step, value)
            for t in trials
            for step, value in t.intermediate_values.items()
            if np.isfinite(value)
        ]
        reporting = sum(1 for t in trials if t.intermediate_values)
        flat = np.array(pairs, dtype=np.float64).reshape(-1, 2)
        return flat[:, 0].astype(np.int64), flat[:, 1], reporting
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    table = models.TrialModel.__table__
    curve = models.TrialIntermediateValueModel.__table__
    # Non-finite values (a NaN loss) are stored as NULL, with their kind beside.
    where = [table.c.study_id == study._study_id, curve.c.intermediate_value.is_not(None)]
    joined = curve.join(table, table.c.trial_id == curve.c.trial_id)
    query = sa.select(curve.c.step, curve.c.intermediate_value).select_from(joined).where(*where)
    count = sa.select(sa.func.count(sa.distinct(curve.c.trial_id))).select_from(joined)
    blocks = []
    with rdb.engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=_ROWS).execute(query)
        for rows in result.partitions():
            blocks.append(
                np.fromiter(itertools.chain.from_iterable(rows), np.float64, count=2 * len(rows))
            )
        reporting = int(connection.execute(count.where(*where)).scalar_one())
    flat = np.concatenate(blocks).reshape(-1, 2) if blocks else np.empty((0, 2))
    return flat[:, 0].astype(np.int64), flat[:, 1], reporting


def band(epochs: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Per epoch (sorted): how many values, their 25th percentile, median and 75th percentile."""
    import numpy as np

    order = np.argsort(epochs, kind="stable")
    epochs, values = epochs[order], values[order]
    steps, starts, sizes = np.unique(epochs, return_index=True, return_counts=True)
    quartiles = np.array(
        [np.percentile(values[a : a + n], (25, 50, 75)) for a, n in zip(starts, sizes, strict=True)]
    ).reshape(-1, 3)
    return {"epoch": steps, "count": sizes, "q25": quartiles[:, 0], "median": quartiles[:, 1],
            "q75": quartiles[:, 2]}  # fmt: skip


def sample_ids(table: Columns, maximize: bool) -> tuple[np.ndarray, int]:
    """The ids of the sample of complete trials (finite values only) and how many were eligible:
    the best :data:`SAMPLE_BEST` (the earlier on ties) and a uniform draw of the rest, seeded
    by :data:`SAMPLE_SEED`, :data:`SAMPLE` in all; all of them when there are no more."""
    import numpy as np

    eligible = table.complete & np.isfinite(table.values)
    ids, numbers, values = table.ids[eligible], table.numbers[eligible], table.values[eligible]
    if len(ids) <= SAMPLE:
        return np.sort(ids), len(ids)
    order = np.lexsort((numbers, -values if maximize else values))
    best, rest = ids[order[:SAMPLE_BEST]], ids[order[SAMPLE_BEST:]]
    drawn = np.random.default_rng(SAMPLE_SEED).choice(rest, SAMPLE - len(best), replace=False)
    return np.sort(np.concatenate([best, drawn])), len(ids)


def sample(study: optuna.Study, table: Columns | None = None) -> optuna.Study:
    """An in-memory study of :func:`sample_ids`' trials, read whole, :data:`_CHUNK` at a time
    (renumbered from 0, in their order)."""
    import optuna

    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ids, _ = sample_ids(columns(study) if table is None else table, maximize)
    with storage_module.quiet_optuna():
        copy = optuna.create_study(study_name=study.study_name, direction=study.direction)
    for first in range(0, len(ids), _CHUNK):
        copy.add_trials(trials_by_id(study, ids[first : first + _CHUNK].tolist()))
    return copy


def _large_sections(study: optuna.Study, metric: str) -> Iterator[Section]:
    import optuna
    import optuna.visualization as vis

    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    table = columns(study)
    yield Section("Optimization history", *_history(table, metric, maximize))
    yield Section(f"Learning curves ({metric} per epoch)", *_banded_curves(study, metric))
    ids, eligible = sample_ids(table, maximize)
    picked = sample(study, table)
    del table
    if len(ids) < eligible:
        which = (
            f"{len(ids):,} of the {eligible:,} complete trials (the best {SAMPLE_BEST:,} and"
            f" {len(ids) - SAMPLE_BEST:,} drawn at random from the rest, seed {SAMPLE_SEED})"
        )
        goal = f"the study's best {SAMPLE_BEST:,}"
    else:
        which, goal = f"all {eligible:,} complete trials", "their best 10%"
    note = importance_note(picked)
    figure: Any = note
    if note is None:
        try:
            figure = _importance_bars(picked, metric)
        except (ValueError, RuntimeError) as e:
            figure = f"Hyperparameter importances could not be computed: {e}"
    yield Section(
        f"Hyperparameter importances for {metric}",
        figure,
        f"PED-ANOVA on {which}: how much each parameter matters for reaching {goal}.",
    )
    yield Section(
        "Parallel coordinates",
        vis.plot_parallel_coordinate(picked, target_name=metric),
        f"The same {which}." if len(ids) < eligible else f"All {eligible:,} complete trials.",
    )


def _importance_bars(study: optuna.Study, metric: str) -> Any:
    """Optuna's importance plot of PED-ANOVA's importances, drawn as its
    ``plot_param_importances`` draws it, less the deep copy of every trial per parameter that
    its hover text costs (seconds on a thousand trials)."""
    import optuna
    import plotly.graph_objects as go

    importances = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
    )
    kinds: dict[str, str] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            kinds.setdefault(name, type(distribution).__name__)
    names = list(reversed(importances))
    values = [importances[name] for name in names]
    bars = go.Bar(
        x=values,
        y=names,
        name=metric,
        text=[f"{v:.2f}" if v >= 0.01 else "<0.01" for v in values],
        textposition="outside",
        cliponaxis=False,
        hovertemplate=[f"{n} ({kinds[n]}): {importances[n]}<extra></extra>" for n in names],
        orientation="h",
    )
    layout = go.Layout(
        title="Hyperparameter Importances",
        xaxis={"title": "Hyperparameter Importance"},
        yaxis={"title": "Hyperparameter"},
    )
    return go.Figure([bars], layout)


def _history(table: Columns, metric: str, maximize: bool) -> tuple[Any, str]:
    """Optuna's optimization history plot, drawn from columns: a WebGL scatter of the complete
    trials' values and the best value so far as a step line through its changes."""
    import numpy as np
    import plotly.graph_objects as go

    shown = table.complete & np.isfinite(table.values)
    numbers, values = table.numbers[shown].astype(np.int32), table.values[shown]
    traces = [go.Scattergl(x=numbers, y=values, mode="markers", name=metric,
                           marker={"size": 4})]  # fmt: skip
    if len(values):
        best = (np.maximum if maximize else np.minimum).accumulate(values)
        changed = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
        last = int(table.numbers.max())
        traces.append(
            go.Scatter(x=np.r_[numbers[changed], last].astype(np.int32),
                       y=np.r_[best[changed], best[-1]], mode="lines",
                       line={"shape": "hv"}, name="Best Value")
        )  # fmt: skip
    layout = go.Layout(
        title="Optimization History Plot", xaxis={"title": "Trial"}, yaxis={"title": metric}
    )
    about = (
        f"Every complete trial's value ({len(values):,} of {len(table.numbers):,} trials), and"
        f" the best so far."
    )
    return go.Figure(data=traces, layout=layout), about


def _banded_curves(study: optuna.Study, metric: str) -> tuple[Any, str]:
    """The best :data:`CURVES` trials' learning curves over the median and interquartile band,
    per epoch, of every trial's values."""
    import plotly.graph_objects as go

    epochs, values, reporting = epoch_values(study)
    spread = band(epochs, values)
    del epochs, values
    x = spread["epoch"]
    traces = [
        go.Scatter(x=x, y=spread["q75"], mode="lines", line={"width": 0}, showlegend=False,
                   hoverinfo="skip"),
        go.Scatter(x=x, y=spread["q25"], mode="lines", line={"width": 0}, fill="tonexty",
                   fillcolor="rgba(120, 120, 120, 0.25)", name="25-75% of all trials",
                   hoverinfo="skip"),
        go.Scatter(x=x, y=spread["median"], mode="lines", name="median of all trials",
                   line={"color": "#555", "dash": "dash"}, customdata=spread["count"],
                   hovertemplate="epoch %{x}: %{y} (median of %{customdata} trials)"),
    ]  # fmt: skip
    best = ranked(study, CURVES)
    for trial in best:
        steps = sorted(trial.intermediate_values)
        traces.append(
            go.Scatter(x=steps, y=[trial.intermediate_values[s] for s in steps],
                       mode="lines+markers", marker={"maxdisplayed": 10},
                       name=f"Trial{trial.number}")
        )  # fmt: skip
    layout = go.Layout(
        title="Intermediate Values Plot",
        # Keras' pruning callback reports epochs counted from 0.
        xaxis={"title": "Epoch (from 0)"},
        yaxis={"title": metric},
    )
    about = (
        f"The best {len(best):,} trials' curves, and per epoch the median and interquartile band"
        f" of all {reporting:,} trials' values (of those that reached the epoch)."
    )
    return go.Figure(data=traces, layout=layout), about
