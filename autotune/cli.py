"""The ``autotune`` command: a thin layer over :mod:`autotune.runner` and friends.

It imports neither TensorFlow nor Optuna at module level, so ``autotune --help`` answers at once;
only the commands that train import TensorFlow. autotune's own errors become one line on stderr
and exit code 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from autotune import storage as storage_module
from autotune.errors import AutotuneError
from autotune.export import FORMATS as EXPORT_FORMATS
from autotune.pruners import PRUNERS
from autotune.samplers import SAMPLERS

EXIT_INTERRUPTED = 130


def _errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turns autotune's errors into one clean line and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from autotune.runner import Interrupted

        try:
            return command(*args, **kwargs)
        except Interrupted as e:
            click.echo(str(e), err=True)
            sys.exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            click.echo("Stopped by Ctrl-C.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except AutotuneError as e:
            raise click.ClickException(str(e)) from None

    return wrapper


storage_option = click.option(
    "--storage",
    metavar="URL",
    help="Storage URL (default: $AUTOTUNE_STORAGE, else sqlite:///autotune.db here).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="autotune")
def cli() -> None:
    """Hyperparameter search for TensorFlow/Keras models, built on Optuna.

    Every trial is kept in a storage (an SQLite file by default), so a study can be stopped,
    resumed, shared between workers and watched in optuna-dashboard.
    """


@cli.command()
@click.option("--study", "study_name", required=True, metavar="NAME_OR_PATH",
              help="A study name (circles) or the path of a study file.")
@click.option("--n-trials", type=click.IntRange(min=1), help="The study's total of trials.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Start no new trial after this many seconds.")
@storage_option
@click.option("--sampler", type=click.Choice(sorted(SAMPLERS)), help="Override the sampler.")
@click.option("--pruner", type=click.Choice(sorted(PRUNERS)), help="Override the pruner.")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Override the epochs per trial.")
@click.option("--seed", type=int, help="Override the seed.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine sharing the study.")
@click.option("--warm-start", metavar="OTHER_STUDY",
              help="First try the best configurations of this study in the same storage.")
@click.option("--top", type=click.IntRange(min=1), metavar="K",
              help="With --warm-start: how many of its best trials to try (default 5).")
@_errors
def run(
    study_name: str,
    n_trials: int | None,
    timeout: float | None,
    storage: str | None,
    sampler: str | None,
    pruner: str | None,
    max_epochs: int | None,
    seed: int | None,
    workers: int,
    warm_start: str | None,
    top: int | None,
) -> None:
    """Run a study, or resume it, until its total of trials is reached.

    Prints one line per finished trial, then the best trial and where the study is kept.
    Running the same study again resumes it; a finished study returns at once.

    With --warm-start, the best complete configurations of another study are queued first;
    those the space cannot hold, or that this study already has, are skipped and named.

    Example:

        autotune run --study circles

        autotune run --study ./my_study.toml --n-trials 100 --workers 2

        autotune run --study digits_wide --warm-start digits --top 3
    """
    if top is not None and warm_start is None:
        raise click.UsageError("--top needs --warm-start OTHER_STUDY.")
    from autotune import runner
    from autotune.spec import resolve

    spec = resolve(study_name).with_overrides(
        n_trials=n_trials, sampler=sampler, pruner=pruner, max_epochs=max_epochs, seed=seed
    )
    url = storage_module.resolve_url(storage)
    click.echo(
        f"Study '{spec.name}' ({spec.source}): {spec.n_trials} trials, {spec.sampler} sampler,"
        f" {spec.pruner} pruner, storage {storage_module.mask(url)}"
    )
    study = runner.run(spec, storage=url, timeout=timeout, workers=workers,
                       warm_start=warm_start, top=top, report=click.echo)
    click.echo(runner.summary(study, spec, url))


@cli.command()
@click.option("--study", "study_name", required=True, metavar="NAME",
              help="The study's name in the storage.")
@storage_option
@click.option("--worker-index", type=click.IntRange(min=0),
              help="Seeds this worker's sampler with the study seed + INDEX (default: random).")
@click.option("--threads", type=click.IntRange(min=1),
              help="TensorFlow threads for this worker (default: all cores).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Start no new trial after this many seconds.")
@_errors
def worker(
    study_name: str,
    storage: str | None,
    worker_index: int | None,
    threads: int | None,
    timeout: float | None,
) -> None:
    """Join a study that exists in a shared storage and work until its total is reached.

    Start one on each machine; they share the study through the storage. The study file is
    read from the storage, so the machines need only the storage URL.

    Example:

        AUTOTUNE_STORAGE=postgresql+psycopg://user:secret@db:5432/studies \\
            autotune worker --study circles
    """
    from autotune import runner

    url = storage_module.resolve_url(storage)
    spec = runner.stored_spec(_load_study(study_name, url))
    seed = spec.seed + worker_index if worker_index is not None else None
    prefix = f"[worker {worker_index}] " if worker_index is not None else ""
    runner.work(spec, url, sampler_seed=seed, threads=threads, timeout=timeout,
                report=click.echo, prefix=prefix)


def _load_study(name: str, url: str) -> Any:
    """Loads a stored study by name, without creating a storage that does not exist."""
    import optuna

    _require_existing(url)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = storage_module.open_storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if name not in names:
        raise AutotuneError(
            f"No study '{name}' in {storage_module.mask(url)}"
            + (f"; it holds: {', '.join(sorted(names))}." if names else "; it holds none yet.")
            + f" Create it with `autotune run --study {name}`."
        )
    return optuna.load_study(study_name=name, storage=storage)


def _require_existing(url: str) -> None:
    if storage_module.is_sqlite(url):
        from pathlib import Path

        path = url.split("///", 1)[-1]
        if not Path(path).is_file():
            raise AutotuneError(
                f"No storage at {path} yet. Run a study first (autotune run --study circles),"
                f" or name another storage with --storage or $AUTOTUNE_STORAGE."
            )


def _stored_name(name_or_path: str) -> str:
    """A study file's path stands for the study it names; anything else is the stored name."""
    if name_or_path.endswith(".toml"):
        from autotune.spec import load

        return load(name_or_path).name
    return name_or_path


@cli.command()
@storage_option
@_errors
def studies(storage: str | None) -> None:
    """List the study files you can run, and the studies in the storage.

    Example:

        autotune studies --storage sqlite:///autotune.db
    """
    from autotune.spec import available

    files = available()
    click.echo("Study files:")
    for place, names in (("./studies", files["local"]), ("shipped", files["shipped"])):
        click.echo(f"  {place}: {', '.join(names) if names else '(none)'}")
    url = storage_module.resolve_url(storage)
    click.echo(f"Studies in {storage_module.mask(url)}:")
    try:
        _require_existing(url)
    except AutotuneError:
        click.echo("  (none yet)")
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    store = storage_module.open_storage(url)
    rows = []
    for summary in store.get_all_studies():
        trials = store.get_all_trials(summary._study_id, deepcopy=False)
        done = sum(1 for t in trials if t.state.name in ("COMPLETE", "PRUNED"))
        target = summary.user_attrs.get("autotune:spec", {}).get("n_trials", "?")
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        best = "-"
        if complete:
            pick = max if summary.direction.name == "MAXIMIZE" else min
            best = f"{pick(t.value for t in complete):.4f}"
        rows.append((summary.study_name, f"{done}/{target}", best, summary.direction.name.lower()))
    if not rows:
        click.echo("  (none yet)")
    for name, count, best, direction in sorted(rows):
        click.echo(f"  {name:<24} {count:>9} trials  best {best} ({direction})")


@cli.command()
@click.option("--study", "study_name", required=True, metavar="NAME",
              help="The study's name in the storage, or its study file.")
@storage_option
@_errors
def show(study_name: str, storage: str | None) -> None:
    """Show a study's trials, and its best value and params.

    Example:

        autotune show --study circles
    """
    from autotune import runner

    url = storage_module.resolve_url(storage)
    study = _load_study(_stored_name(study_name), url)
    trials = study.get_trials(deepcopy=False)
    click.echo(f"Study '{study.study_name}' in {storage_module.mask(url)}:"
               f" {len(trials)} trials, {study.direction.name.lower()}")
    click.echo(f"{'#':>4}  {'state':<8}  {'value':>7}  {'epochs':>6}  {'stopped':<13}  {'sec':>6}  params")
    for t in trials:
        value = "-" if t.value is None else f"{t.value:.4f}"
        attrs = t.user_attrs
        seconds = attrs.get("seconds")
        click.echo(
            f"{t.number:>4}  {t.state.name:<8}  {value:>7}  {attrs.get('epochs', '-'):>6}"
            f"  {attrs.get('stop_reason', '-'):<13}  {'-' if seconds is None else f'{seconds:.1f}':>6}"
            f"  {runner.format_params(t.params)}"
        )
    best = runner.best_trial(study)
    if best is None:
        click.echo("No trial completed yet.")
    else:
        click.echo(f"Best value: {best.value:.4f} (trial {best.number})")
        click.echo(f"Best params: {runner.format_params(best.params)}")


@cli.command()
@click.option("--study", "study_name", required=True, metavar="NAME",
              help="The study's name in the storage, or its study file.")
@storage_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_errors
def delete(study_name: str, storage: str | None, yes: bool) -> None:
    """Delete a study and all its trials from the storage.

    Example:

        autotune delete --study circles --yes
    """
    import optuna

    url = storage_module.resolve_url(storage)
    study = _load_study(_stored_name(study_name), url)
    count = len(study.get_trials(deepcopy=False))
    if not yes:
        click.confirm(
            f"Delete study '{study.study_name}' and its {count} trials from"
            f" {storage_module.mask(url)}?",
            abort=True,
        )
    optuna.delete_study(study_name=study.study_name, storage=study._storage)
    click.echo(f"Deleted study '{study.study_name}' ({count} trials).")


@cli.command()
@storage_option
def env(storage: str | None) -> None:
    """Print versions and settings, for bug reports.

    Example:

        autotune env
    """
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    click.echo(f"python: {platform.python_version()} ({platform.platform()})")
    for package in ("autotune", "optuna", "optuna-integration", "optuna-dashboard", "tensorflow",
                    "keras", "scikit-learn", "numpy", "sqlalchemy", "psycopg", "pymysql", "torch"):
        try:
            click.echo(f"{package}: {version(package)}")
        except PackageNotFoundError:
            click.echo(f"{package}: not installed")
    click.echo(f"cpus: {os.cpu_count()}")
    try:
        click.echo(f"storage: {storage_module.mask(storage_module.resolve_url(storage))}")
    except AutotuneError as e:
        click.echo(f"storage: {e}")


@cli.command()
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; 0.0.0.0 opens the dashboard to the network.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8080, show_default=True,
              help="The port to listen on; 0 picks a free one.")
@_errors
def dashboard(storage: str | None, host: str, port: int) -> None:
    """Serve optuna-dashboard on the storage that `run` writes to, until Ctrl-C.

    The dashboard shows every study in the storage, live: the optimization history, the
    learning curves, the importances and each trial's params and attributes.

    Example:

        autotune dashboard

        autotune dashboard --storage postgresql+psycopg://me@db:5432/studies --port 8081
    """
    from autotune import dashboard as dashboard_module

    url = storage_module.resolve_url(storage)
    _require_existing(url)

    def ready(address: str) -> None:
        click.echo(f"optuna-dashboard on {storage_module.mask(url)}: {address}")
        click.echo("Stop it with Ctrl-C.")

    dashboard_module.serve(url, host, port, ready=ready)
    click.echo("Dashboard stopped.")


@cli.command()
@click.option("--study", "study_name", required=True, metavar="NAME",
              help="The study's name in the storage, or its study file.")
@storage_option
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE.html",
              help="Where to write the report (default: NAME-report.html here).")
@_errors
def report(study_name: str, storage: str | None, out: str | None) -> None:
    """Write a study's report: one HTML file that opens offline.

    It holds Optuna's plots of the optimization history, the learning curves, the
    hyperparameter importances and the parallel coordinates, and a table of the best trials.

    Example:

        autotune report --study circles --out circles.html
    """
    from autotune import report as report_module
    from autotune.runner import SPEC_ATTR

    url = storage_module.resolve_url(storage)
    study = _load_study(_stored_name(study_name), url)
    metric = study.user_attrs.get(SPEC_ATTR, {}).get("metric")
    path = report_module.write(study, out or f"{study.study_name}-report.html", metric)
    count = len(study.get_trials(deepcopy=False))
    click.echo(f"Wrote the report of study '{study.study_name}' ({count} trials) to {path}")


@cli.command()
@click.option("--study", "study_name", required=True, metavar="NAME",
              help="The study's name in the storage, or its study file.")
@storage_option
@click.option("--export", "export_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write the model (model.keras) and metadata.json into this folder.")
@_errors
def best(study_name: str, storage: str | None, export_dir: str | None) -> None:
    """Retrain the best trial's model and score it on the held-out test split.

    The best complete trial's params are trained again on the training split, with the
    trial's seed, for the epochs at which the trial reached its best value: the model the
    search scored. Its validation and test figures are printed side by side; the test split
    was never seen by the search.

    Example:

        autotune best --study circles --export models/circles
    """
    from autotune import best as best_module

    url = storage_module.resolve_url(storage)
    study = _load_study(_stored_name(study_name), url)
    result = best_module.retrain(study)
    for line in best_module.describe(result):
        click.echo(line)
    if export_dir:
        directory = best_module.export(result, export_dir)
        click.echo(
            f"Exported to {directory}: {best_module.MODEL_FILE} (load with"
            f" keras.saving.load_model) and {best_module.METADATA_FILE}."
        )


@cli.command("export")
@click.option("--study", "study_name", required=True, metavar="NAME",
              help="The study's name in the storage, or its study file.")
@storage_option
@click.option("--format", "fmt", type=click.Choice(sorted(EXPORT_FORMATS)), default="csv",
              show_default=True, help="The table's format.")
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the table (default: standard output).")
@_errors
def export_trials(study_name: str, storage: str | None, fmt: str, out: str | None) -> None:
    """Write a study's trials as a table, in CSV or JSON.

    One row per trial: number, state, value, params, epochs, stop_reason, seconds,
    datetime_start, datetime_complete and duration (seconds).

    Example:

        autotune export --study circles --format csv --out circles.csv

        autotune export --study circles --format json | jq '.[0]'
    """
    from autotune import export as export_module

    url = storage_module.resolve_url(storage)
    study = _load_study(_stored_name(study_name), url)
    if out is None:
        click.echo(export_module.render(study, fmt), nl=False)
        return
    count = export_module.write(study, fmt, out)
    click.echo(f"Wrote {count} trials of study '{study.study_name}' to {out} ({fmt}).")


def main() -> None:
    """Entry point of the ``autotune`` console script."""
    cli(prog_name="autotune")
