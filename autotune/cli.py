"""The ``autotune`` command: a thin layer over :mod:`autotune.runner` and friends.

It imports neither TensorFlow nor Optuna at module level, so ``autotune --help`` answers at once;
only the commands that train import TensorFlow. autotune's own errors become one line on stderr
and exit code 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from autotune import storage as storage_module
from autotune.errors import AutotuneError, Interrupted
from autotune.pruners import PRUNERS
from autotune.samplers import SAMPLERS
from autotune.table import FORMATS as TABLE_FORMATS

EXIT_INTERRUPTED = 130
DEBUG_ENV = "AUTOTUNE_DEBUG"


def _errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turns autotune's errors into one clean line and exit code 1, and Ctrl-C into 130; with
    ``--debug`` (or ``AUTOTUNE_DEBUG=1``) the traceback is printed too."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as e:
            _traceback_if_debug()
            click.echo(str(e) if isinstance(e, Interrupted) else "Stopped by Ctrl-C.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except AutotuneError as e:
            _traceback_if_debug()
            raise click.ClickException(str(e)) from e

    return wrapper


def _traceback_if_debug() -> None:
    context = click.get_current_context(silent=True)
    debug = bool(context and context.find_root().params.get("debug"))
    if debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        traceback.print_exc()


# Every command that reads a stored study names it the same way.
study_option = click.option(
    "--study",
    "study_name",
    required=True,
    metavar="NAME",
    help="The study's name in the storage, or its study file.",
)
force_option = click.option(
    "--force", is_flag=True, help="Replace the file or folder if it exists already."
)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="Print nothing while the study runs, only the summary."
)
verbose_option = click.option("--verbose", "-v", is_flag=True, help="Print a line per epoch too.")
storage_option = click.option(
    "--storage",
    metavar="URL",
    help="Storage URL (default: $AUTOTUNE_STORAGE, else sqlite:///autotune.db here).",
)


def listen_options(port: int, opened: str) -> Callable[[Any], Any]:
    """``--host`` (127.0.0.1) and ``--port`` (``port``) of a server; ``opened`` names what
    0.0.0.0 opens to the network."""

    def add(command: Any) -> Any:
        command = click.option(
            "--port",
            type=click.IntRange(min=0, max=65535),
            default=port,
            show_default=True,
            help="The port to listen on; 0 picks a free one.",
        )(command)
        return click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help=f"The address to listen on; 0.0.0.0 opens {opened} to the network.",
        )(command)

    return add


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="autotune")
@click.option(
    "--debug", is_flag=True, help=f"Print the traceback of an error too (or set {DEBUG_ENV}=1)."
)
def cli(debug: bool) -> None:
    """Hyperparameter search for TensorFlow/Keras models, built on Optuna.

    Every trial is kept in a storage (an SQLite file by default), so a study can be stopped,
    resumed, shared between workers and watched in optuna-dashboard.
    """


@cli.command()
@click.option(
    "--study",
    "study_name",
    required=True,
    metavar="NAME_OR_PATH",
    help="A study name (circles) or the path of a study file.",
)
@click.option("--n-trials", type=click.IntRange(min=1), help="The study's total of trials.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop after this many seconds: the running trial ends at its next epoch.",
)
@storage_option
@click.option("--sampler", type=click.Choice(sorted(SAMPLERS)), help="Override the sampler.")
@click.option("--pruner", type=click.Choice(sorted(PRUNERS)), help="Override the pruner.")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Override the epochs per trial.")
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), help="Override the seed.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes on this machine sharing the study.",
)
@click.option(
    "--warm-start",
    metavar="OTHER_STUDY",
    help="First try the best configurations of this study in the same storage.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    metavar="K",
    help="With --warm-start: how many of its best trials to try (default 5).",
)
@click.option(
    "--tensorboard",
    metavar="DIR",
    help="Write each trial's metrics and params for TensorBoard under DIR/STUDY/trial-N.",
)
@click.option(
    "--mlflow",
    metavar="URI",
    help="Log the study and its trials (nested runs) to this MLflow tracking URI.",
)
@click.option(
    "--artifacts",
    metavar="DIR",
    help="Where checkpoints and the best model go (default: beside the SQLite file).",
)
@click.option(
    "--gpus",
    metavar="auto|none|0,1,...",
    help="The GPUs the workers train on, one each (default auto: those there are; none: the CPU).",
)
@click.option(
    "--trials-per-gpu",
    type=click.IntRange(min=1),
    help="The most workers on one GPU (default: share them evenly).",
)
@quiet_option
@verbose_option
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
    tensorboard: str | None,
    mlflow: str | None,
    artifacts: str | None,
    gpus: str | None,
    trials_per_gpu: int | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Run a study, or resume it, until its total of trials is reached.

    Prints one line per finished trial, then the best trial and where the study is kept. On a
    terminal, a live block below shows the study's progress and the running trial's epoch.
    Running the same study again resumes it; a finished study returns at once.

    With --warm-start, the best complete configurations of another study are queued first;
    those the space cannot hold, or that this study already has, are skipped and named.

    Example:

        autotune run --study circles

        autotune run --study ./my_study.toml --n-trials 100 --workers 2

        autotune run --study digits_wide --warm-start digits --top 3

        autotune run --study digits_cnn --workers 4 --gpus 0,1 --trials-per-gpu 2
    """
    if top is not None and warm_start is None:
        raise click.UsageError("--top needs --warm-start OTHER_STUDY.")
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose cannot go together.")
    from autotune import console, runner
    from autotune.spec import resolve

    spec = resolve(study_name).with_overrides(
        n_trials=n_trials, sampler=sampler, pruner=pruner, max_epochs=max_epochs, seed=seed,
        tensorboard=tensorboard, mlflow=mlflow, artifacts=artifacts,
    )  # fmt: skip
    url = storage_module.resolve_url(storage)
    display = _display(quiet, verbose)
    display.echo(console.run_header(spec, url))
    study = runner.run(
        spec,
        storage=url,
        timeout=timeout,
        workers=workers,
        warm_start=warm_start,
        top=top,
        echo=display.echo,
        watcher=display,
        gpus=gpus,
        trials_per_gpu=trials_per_gpu,
    )
    click.echo(console.summary(study, spec, url, timeout=timeout or spec.timeout))


def _display(quiet: bool, verbose: bool) -> Any:
    """The progress display of ``run`` and ``worker``: live on a terminal, else plain lines."""
    from autotune.progress import Display, mode_for

    return Display(click.echo, mode=mode_for(quiet), verbose=verbose)


@cli.command()
@click.option(
    "--study", "study_name", required=True, metavar="NAME", help="The study's name in the storage."
)
@storage_option
@click.option(
    "--worker-index",
    type=click.IntRange(min=0),
    help="Seeds this worker's sampler with the study seed + INDEX (default: random).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="TensorFlow threads for this worker (default: all cores).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop after this many seconds: the running trial ends at its next epoch.",
)
@quiet_option
@verbose_option
@_errors
def worker(
    study_name: str,
    storage: str | None,
    worker_index: int | None,
    threads: int | None,
    timeout: float | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Join a study that exists in a shared storage and work until its total is reached.

    Start one on each machine; they share the study through the storage. The study file is
    read from the storage, so the machines need only the storage URL.

    Example:

        AUTOTUNE_STORAGE=postgresql+psycopg://user:secret@db:5432/studies \\
            autotune worker --study circles
    """
    from autotune import runner

    display = _display(quiet, verbose)
    runner.join(
        study_name,
        storage=storage,
        worker_index=worker_index,
        threads=threads,
        timeout=timeout,
        echo=display.echo,
        watcher=display,
    )


@cli.command()
@storage_option
@_errors
def studies(storage: str | None) -> None:
    """List the study files you can run, and the studies in the storage.

    Example:

        autotune studies --storage sqlite:///autotune.db
    """
    from autotune import console
    from autotune import study as study_module
    from autotune.spec import available

    files = available()
    click.echo("Study files:")
    for place, names in (("./studies", files["local"]), ("shipped", files["shipped"])):
        click.echo(f"  {place}: {', '.join(names) if names else '(none)'}")
    url = storage_module.resolve_url(storage)
    click.echo(f"Studies in {storage_module.mask(url)}:")
    rows = study_module.summaries(url)
    for row in rows:
        click.echo(console.study_row(*row))
    if not rows:
        click.echo("  (none yet)")


@cli.command()
@study_option
@storage_option
@click.option(
    "--all", "every", is_flag=True,
    help="List every trial (a study of more than 50 trials shows its best 10 and latest 20).",
)  # fmt: skip
@_errors
def show(study_name: str, storage: str | None, every: bool) -> None:
    """Show a study's trials, and its best value and params.

    Example:

        autotune show --study circles

        autotune show --study circles --all | less
    """
    from autotune import console
    from autotune.study import load_study

    url = storage_module.resolve_url(storage)
    for line in console.show(load_study(study_name, url), url, every=every):
        click.echo(line)


@cli.command()
@study_option
@storage_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_errors
def delete(study_name: str, storage: str | None, yes: bool) -> None:
    """Delete a study and all its trials from the storage.

    Example:

        autotune delete --study circles --yes
    """
    from autotune import study as study_module

    url = storage_module.resolve_url(storage)
    study = study_module.load_study(study_name, url)
    count = study_module.trial_count(study)
    if not yes:
        click.confirm(
            f"Delete study '{study.study_name}' and its {count} trials from"
            f" {storage_module.mask(url)}?",
            abort=True,
        )
    study_module.delete_study(study)
    click.echo(f"Deleted study '{study.study_name}' ({count} trials).")


@cli.command()
@storage_option
def env(storage: str | None) -> None:
    """Print versions and settings, for bug reports.

    Example:

        autotune env
    """
    import platform

    from autotune.versions import versions

    for package, version in versions().items():
        extra = f" ({platform.platform()})" if package == "python" else ""
        click.echo(f"{package}: {version}{extra}")
    click.echo(f"cpus: {os.cpu_count()}")
    from autotune import devices

    click.echo(f"devices (TensorFlow): {', '.join(devices.describe())}")
    try:
        click.echo(f"storage: {storage_module.mask(storage_module.resolve_url(storage))}")
    except AutotuneError as e:
        click.echo(f"storage: {e}")


@cli.command()
@storage_option
@listen_options(8080, "the dashboard")
@click.option(
    "--artifacts",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="The artifact folder (default: beside the SQLite file, else ./autotune-artifacts).",
)
@_errors
def dashboard(storage: str | None, host: str, port: int, artifacts: str | None) -> None:
    """Serve optuna-dashboard on the storage that `run` writes to, until Ctrl-C.

    The dashboard shows every study in the storage, live: the optimization history, the
    learning curves, the importances and each trial's params and attributes, and the artifacts
    (running trials' checkpoints, each study's best model).

    Example:

        autotune dashboard

        autotune dashboard --storage postgresql+psycopg://me@db:5432/studies --port 8081
    """
    from autotune import dashboard as dashboard_module
    from autotune.study import require_existing

    url = storage_module.resolve_url(storage)
    require_existing(url)

    def ready(address: str) -> None:
        click.echo(f"optuna-dashboard on {storage_module.mask(url)}: {address}")
        click.echo("Stop it with Ctrl-C.")

    dashboard_module.serve(
        url, host, port, ready=ready, artifacts=Path(artifacts) if artifacts else None
    )
    click.echo("Dashboard stopped.")


@cli.command("storage-proxy")
@storage_option
@listen_options(13000, "it, without a password,")
@_errors
def storage_proxy(storage: str | None, host: str, port: int) -> None:
    """Serve the storage to many workers over a few database connections, until Ctrl-C.

    Workers give --storage grpc://HOST:PORT instead of the database's URL; only the proxy
    connects to the database. Trials of workers that die are failed after the study's
    grace_period and their params queued again, as without the proxy.

    Example:

        autotune storage-proxy --storage postgresql+psycopg://me@db:5432/studies

        AUTOTUNE_STORAGE=grpc://127.0.0.1:13000 autotune worker --study circles
    """
    from autotune import proxy as proxy_module

    url = storage_module.resolve_url(storage)

    def ready(proxy: Any) -> None:
        click.echo(
            f"Storage proxy for {storage_module.mask(url)} on {proxy.host}:{proxy.port};"
            f" workers use --storage {proxy.address}. Stop it with Ctrl-C."
        )

    proxy_module.serve(url, host, port, ready=ready, warn=lambda line: click.echo(line, err=True))
    click.echo("Storage proxy stopped.")


@cli.command()
@study_option
@storage_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    metavar="FILE.html",
    help="Where to write the report (default: NAME-report.html here).",
)
@_errors
@force_option
def report(study_name: str, storage: str | None, out: str | None, force: bool) -> None:
    """Write a study's report: one HTML file that opens offline.

    It holds Optuna's plots of the optimization history, the learning curves, the
    hyperparameter importances and the parallel coordinates, and a table of the best trials.

    Example:

        autotune report --study circles --out circles.html
    """
    from autotune import report as report_module
    from autotune.study import load_study, trial_count

    url = storage_module.resolve_url(storage)
    study = load_study(study_name, url)
    path = report_module.write(
        study, out or report_module.default_path(study.study_name), force=force, storage=url
    )
    count = trial_count(study)
    click.echo(f"Wrote the report of study '{study.study_name}' ({count} trials) to {path}")


@cli.command()
@study_option
@storage_option
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write the model (model.keras) and metadata.json into this folder.",
)
@_errors
@force_option
def best(study_name: str, storage: str | None, export_dir: str | None, force: bool) -> None:
    """Retrain the best trial's model and score it on the held-out test split.

    The best complete trial's params are trained again on the training split, with the
    trial's seed, for the epochs at which the trial reached its best value: the model the
    search scored. Its validation and test figures are printed side by side; the test split
    was never seen by the search.

    Example:

        autotune best --study circles --export models/circles
    """
    from autotune import best as best_module
    from autotune import console, files
    from autotune.study import load_study

    study = load_study(study_name, storage)
    if export_dir:  # before the retraining, which takes a while
        files.check_target(export_dir, force=force)
    result = best_module.retrain(study)
    for line in console.best_model(result):
        click.echo(line)
    if export_dir:
        directory = best_module.export(result, export_dir, force=force)
        click.echo(
            f"Exported to {directory}: {best_module.MODEL_FILE} (load with"
            f" keras.saving.load_model) and {best_module.METADATA_FILE}."
        )
        from autotune import trackers

        trackers.log_export(study, directory, click.echo)


@cli.command()
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="A model folder that `autotune best --export` wrote.",
)
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(),
    metavar="FILE_OR_DIR",
    help="New rows: a CSV file with the feature columns, an .npz file with an x array, or"
    " (a model of images) an image or a folder of them.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Where to write the predictions as CSV (default: standard output).",
)
@_errors
@force_option
def predict(model_dir: str, data_file: str, out: str | None, force: bool) -> None:
    """Predict new rows with a model that `autotune best --export` wrote.

    The CSV file needs the study's feature columns, with raw values as in the study's own
    data; its target column, if there, is ignored. Each row gets the predicted label and one
    probability per class (p_<class>), or the predicted value. A model of array data takes an
    .npz file with an x array of raw examples.

    Example:

        autotune best --study churn --export models/churn

        autotune predict --model models/churn --data new.csv --out out.csv
    """
    from autotune import files
    from autotune import predict as predict_module

    if out:  # before the model is loaded
        files.check_target(out, force=force)
    predictions = predict_module.predict(model_dir, data_file)
    if out is None:
        click.echo(predictions.to_csv(), nl=False)
        return
    predict_module.write(predictions, out, force=force)
    click.echo(f"Wrote {len(predictions)} predictions to {out}.")


@cli.command()
@study_option
@storage_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(TABLE_FORMATS)),
    default="csv",
    show_default=True,
    help="The table's format.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Where to write the table (default: standard output).",
)
@_errors
@force_option
def trials(study_name: str, storage: str | None, fmt: str, out: str | None, force: bool) -> None:
    """Write a study's trials as a table, in CSV or JSON.

    One row per trial: number, state, value, params, epochs, stop_reason, seconds,
    datetime_start, datetime_complete and duration (seconds).

    Example:

        autotune trials --study circles --format csv --out circles.csv

        autotune trials --study circles --format json | jq '.[0]'
    """
    from autotune import table
    from autotune.study import load_study

    url = storage_module.resolve_url(storage)
    study = load_study(study_name, url)
    if out is None:
        for piece in table.render(study, fmt):
            click.echo(piece, nl=False)
        return
    count = table.write(study, fmt, out, force=force, storage=url)
    click.echo(f"Wrote {count} trials of study '{study.study_name}' to {out} ({fmt}).")


def main() -> None:
    """Entry point of the ``autotune`` console script."""
    cli(prog_name="autotune")
