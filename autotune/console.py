"""Every line autotune prints to a person, and the quiet it keeps while it works.

The library returns data; these functions turn it into text. The CLI prints them; a Python
caller passes ``echo=print`` (or any callable that takes a line) to :func:`autotune.run`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from autotune import storage as storage_module
from autotune.study import Counts, best_trial, counts, latest, ranked

if TYPE_CHECKING:
    import optuna

    from autotune.best import BestModel
    from autotune.spec import StudySpec

# Receives one line of text meant for a person.
Echo = Callable[[str], None]


def format_params(params: Mapping[str, Any]) -> str:
    """``name=value`` pairs with floats to 3 significant figures."""
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """One line for a finished trial: number, state, value, epochs, best so far, params."""
    attrs = trial.user_attrs
    epochs = f"{attrs.get('epochs', '?')} ep {attrs.get('stop_reason', '')}".strip()
    best = best_trial(study)
    best_text = "best -" if best is None else f"best {best.value:.4f} (#{best.number})"
    line = (
        f"trial {trial.number:>3}  {trial.state.name:<8}  {_value(trial.value):>7}  {epochs:<20}"
        f"  {best_text}  {format_params(trial.params)}"
    )
    if attrs.get("fail_reason"):
        line += f"  ({attrs['fail_reason']})"
    return line


def taken_over(number: int | None) -> str:
    """A worker's trial that another worker failed while this one was paused."""
    return (
        f"trial {number:>3}  dropped: another worker failed it while this one went without a"
        f" heartbeat for longer than grace_period (paused or stalled); its params run again."
        f" Going on with the next trial."
    )


def reconnected(number: int | None) -> str:
    """The storage dropped this worker's connection, and answers again."""
    during = f" during trial {number}" if number is not None else ""
    return (
        f"the storage dropped the connection{during} and answers again; going on (a trial"
        f" left RUNNING is failed and retried once its heartbeat is grace_period old)."
    )


def run_header(spec: StudySpec, url: str) -> str:
    """The first line of ``autotune run``: what runs, and where it is kept."""
    return (
        f"Study '{spec.name}' ({spec.source}): {spec.n_trials} trials, {spec.sampler} sampler,"
        f" {spec.pruner} pruner, storage {storage_module.mask(url)}"
    )


def summary(study: optuna.Study, spec: StudySpec, url: str, *, timeout: float | None = None) -> str:
    """The end-of-run text: counts, what ended a run short of its total, the best trial, the
    storage and how to watch it."""
    tally = counts(study)
    lines = [f"Study '{spec.name}': {tally.finished} of {spec.n_trials} trials finished ({tally})."]
    if timeout:
        ended = budget_ended(study, spec, url, timeout, done=tally.finished >= spec.n_trials)
        lines += [ended] if ended else []
    best = best_trial(study)
    if best is None:
        lines.append("No trial completed yet.")
    else:
        lines.append(
            f"Best {spec.metric}: {best.value:.4f} (trial {best.number},"
            f" {best.user_attrs.get('epochs', '?')} epochs)"
        )
        lines.append(f"Best params: {json.dumps(best.params)}")
    masked = storage_module.mask(url)
    lines.append(f"Storage: {masked}")
    lines.append(f"Dashboard: optuna-dashboard '{masked}'")
    return "\n".join(lines)


def budget_ended(
    study: optuna.Study, spec: StudySpec, url: str, timeout: float, *, done: bool
) -> str | None:
    """What the time budget did: the trial it cut short, if any, and how to go on if the study
    is not done; None when the study finished within it."""
    import optuna

    latest = max(study.get_trials(deepcopy=False), key=lambda t: t.number, default=None)
    pruned = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
    cut = [t for t in pruned if t.user_attrs.get("stop_reason") == "budget"]
    # The cut trial is the last one, or the one before it (a worker's surplus trial after it).
    if not (cut and latest is not None and cut[-1].number >= latest.number - 1):
        return (
            None
            if done
            else (
                f"The time budget ({timeout:g} s) ended this run. Go on with:"
                f" {resume_command(spec, url)}"
            )
        )
    attrs = cut[-1].user_attrs
    line = (
        f"The time budget ({timeout:g} s) ended this run. It stopped trial {cut[-1].number} after"
        f" epoch {attrs.get('epochs', '?')}, kept as pruned (best {spec.metric}"
        f" {_value(attrs.get('best_value'))} at epoch {attrs.get('best_epoch', '?')})."
    )
    return line if done else f"{line} Go on with: {resume_command(spec, url)}"


def already_done(spec: StudySpec) -> str:
    return (
        f"The study has its {spec.n_trials} trials already. To search further, raise the total"
        f" with --n-trials."
    )


def resume_command(spec: StudySpec, url: str) -> str:
    """The command that resumes ``spec``'s study (without the password)."""
    command = f"autotune run --study {spec.source if spec.source.endswith('.toml') else spec.name}"
    if url != storage_module.default_url():
        command += f" --storage '{storage_module.mask(url)}'"
    return command


def interrupted(spec: StudySpec, url: str, done: int | None, retried: int | None) -> str:
    """What Ctrl-C left: the trials kept, the trial that runs again, and how to resume."""
    kept = f"{done} of {spec.n_trials} trials are" if done is not None else "Finished trials are"
    again = (
        f" Trial {retried} did not finish; its params run first on resume."
        if retried is not None
        else ""
    )
    return (
        f"Stopped by Ctrl-C. {kept} finished and kept in {storage_module.mask(url)}.{again}"
        f" Resume with: {resume_command(spec, url)}"
    )


# `show` lists every trial of a study up to this many; a longer one shows its best and latest.
SHOW_ALL_UP_TO = 50
SHOW_BEST = 10
SHOW_LATEST = 20


def show(study: optuna.Study, url: str, *, every: bool = False) -> Iterator[str]:
    """``autotune show``: the study's counts, a table of its trials (of a long study, its best
    and its latest, unless ``every``), then its best value and params. Lines come as they are
    read, so that ``every`` pages through a long study in bounded memory."""
    from autotune.study import pages

    tally = counts(study)
    yield (
        f"Study '{study.study_name}' in {storage_module.mask(url)}: {tally.total} trials"
        f" ({tally}), {study.direction.name.lower()}"
    )
    header = (
        f"{'#':>4}  {'state':<8}  {'value':>7}  {'epochs':>6}  {'stopped':<13}  {'sec':>6}  params"
    )
    top = ranked(study, SHOW_BEST)
    best = top[0] if top else None
    if every or tally.total <= SHOW_ALL_UP_TO:
        yield header
        for page in pages(study):
            yield from map(_show_row, page)
    else:
        yield f"Best {SHOW_BEST}:"
        yield header
        yield from map(_show_row, top)
        yield f"Latest {SHOW_LATEST}:"
        yield header
        last = latest(study, SHOW_LATEST)
        yield from map(_show_row, last)
        yield (
            f"({last[0].number} earlier trials not listed: autotune show --study"
            f" {study.study_name} --all)"
        )
    if best is None:
        yield "No trial completed yet."
    else:
        yield f"Best value: {best.value:.4f} (trial {best.number})"
        yield f"Best params: {format_params(best.params)}"


def _show_row(t: optuna.trial.FrozenTrial) -> str:
    attrs = t.user_attrs
    seconds = attrs.get("seconds")
    return (
        f"{t.number:>4}  {t.state.name:<8}  {_value(t.value):>7}  {attrs.get('epochs', '-'):>6}"
        f"  {attrs.get('stop_reason', '-'):<13}"
        f"  {'-' if seconds is None else f'{seconds:.1f}':>6}  {format_params(t.params)}"
    )


def study_row(name: str, tally: Counts, target: Any, best: float | None, direction: str) -> str:
    """One study of ``autotune studies``: its finished trials of the total, and its best value."""
    count = f"{tally.finished}/{target}"
    return f"  {name:<24} {count:>9} trials  best {_value(best)} ({direction})"


def best_model(best: BestModel) -> list[str]:
    """``autotune best``: where the model comes from, then validation and test side by side."""
    lines = [
        f"Best trial {best.trial} of study '{best.study}': {best.metric} {best.search_value:.4f}"
        f" in the search.",
        f"Retrained on the training split ({best.sizes['train']} samples) for {best.epochs}"
        f" epoch{'s' if best.epochs != 1 else ''} (the trial's best), seed {best.seed}.",
        f"{'metric':<12}{'validation':>12}{'test':>12}",
    ]
    for name in sorted(best.validation):
        validation, test = best.validation[name], best.test.get(name, float("nan"))
        lines.append(f"{name:<12}{validation:>12.4f}{test:>12.4f}")
    lines.append(
        f"Validation: {best.sizes['validation']} samples, the search's own; test:"
        f" {best.sizes['test']} samples, never seen by the search."
    )
    return lines
