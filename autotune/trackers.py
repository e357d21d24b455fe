"""The trackers Keras users keep their runs in: TensorBoard and MLflow.

``tensorboard = true`` in a study file (or ``--tensorboard DIR``) writes each trial's
per-epoch metrics under ``DIR/STUDY/trial-N``, with its params in TensorBoard's HParams plugin,
so that TensorBoard's HParams view compares trials side by side. ``true`` means ``./tensorboard``.

``mlflow = true`` (or ``--mlflow URI``) logs the study as one MLflow run, and each trial as a
run nested in it with its params, per-epoch metrics, state and stop reason; ``autotune best
--export`` adds the exported model to the study's run. ``true`` means ``sqlite:///mlflow.db``
in the current folder (by its absolute path): MLflow's own default store, since MLflow 3
keeps the ``./mlruns`` file store only behind ``MLFLOW_ALLOW_FILE_STORE=true``. The study's
run is recorded with the study, so that every worker nests its trials under the same run, and
a resumed study goes on in it.

Each is an optional extra (``autotune[tensorboard]``, ``autotune[mlflow]``): a study that asks
for one without it installed stops before anything is stored, naming the extra.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.errors import AutotuneError
from autotune.watch import Watcher

if TYPE_CHECKING:
    import optuna

    from autotune.console import Echo
    from autotune.spec import StudySpec

TENSORBOARD_FOLDER = "tensorboard"
MLFLOW_URI = "sqlite:///mlflow.db"
# The study's MLflow run, recorded with the study: {"uri": ..., "experiment": ..., "run": ...}.
MLFLOW_ATTR = "autotune:mlflow"
_EXTRAS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}


def check(spec: StudySpec) -> None:
    """Refuses a tracker the study asks for whose package is not installed.

    Raises:
        AutotuneError: Naming the extra to install, or a file store MLflow would refuse.
    """
    for key, (module, extra) in _EXTRAS.items():
        if getattr(spec, key) and importlib.util.find_spec(module) is None:
            raise AutotuneError(
                f"{spec.source}: {key} is on, but {module} is not installed. Install it with:"
                f" pip install 'autotune[{extra}]'"
            )
    uri = spec.mlflow if isinstance(spec.mlflow, str) else None
    if uri and ("://" not in uri or uri.startswith("file:")) and not _file_store_allowed():
        raise AutotuneError(
            f"{spec.source}: mlflow {uri!r} is a file store, which MLflow 3 refuses unless"
            f" MLFLOW_ALLOW_FILE_STORE=true. Give a database or server URI instead, e.g."
            f" --mlflow {MLFLOW_URI}"
        )


def _file_store_allowed() -> bool:
    import os

    return os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true")


def for_spec(spec: StudySpec, *, owner: bool) -> list[Watcher]:
    """The trackers the study asks for.

    Args:
        owner: This process runs the study (``autotune run``) rather than joins it: it ends the
            study's MLflow run when the run ends.
    """
    check(spec)
    out: list[Watcher] = []
    if spec.tensorboard:
        folder = TENSORBOARD_FOLDER if spec.tensorboard is True else str(spec.tensorboard)
        out.append(TensorBoard(Path(folder), spec))
    if spec.mlflow:
        # The default file by its absolute path: MLflow keeps one store per URI in a process,
        # and a relative one would stay on the folder it was first opened from.
        uri = f"sqlite:///{Path('mlflow.db').absolute()}" if spec.mlflow is True else spec.mlflow
        out.append(MLflow(str(uri), owner=owner))
    return out


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


class TensorBoard(Watcher):
    """Each trial's metrics and params, in TensorBoard's scalars and HParams plugin."""

    label = "TensorBoard logging"

    def __init__(self, folder: Path, spec: StudySpec) -> None:
        self.root = folder / spec.name
        self.spec = spec
        self.writers: dict[int, Any] = {}

    def started(
        self, study: optuna.Study, spec: StudySpec, *, workers: int = 1, timeout: Any = None
    ) -> None:
        """Writes the HParams view's columns (the params and the metrics), once per study."""
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        if self.root.is_dir() and any(self.root.glob("events.out.tfevents.*")):
            return
        self.root.mkdir(parents=True, exist_ok=True)
        hparams = [_hparam(hp, p) for p in spec.space.values()]
        scored = (f"val_{m}" for m in spec.metrics)
        names = dict.fromkeys([spec.metric, "val_loss", "loss", *scored])
        writer = tf.summary.create_file_writer(str(self.root))
        with writer.as_default():
            hp.hparams_config(hparams=hparams, metrics=[hp.Metric(n) for n in names])
        writer.close()

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        writer = tf.summary.create_file_writer(str(self.root / f"trial-{number}"))
        self.writers[number] = writer
        with writer.as_default():
            hp.hparams(dict(params), trial_id=f"trial-{number}")
        writer.flush()

    def epoch_ended(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        import tensorflow as tf

        writer = self.writers.get(number)
        if writer is None:
            return
        with writer.as_default():
            for name, value in _finite(metrics).items():
                tf.summary.scalar(name, value, step=epoch)
        writer.flush()

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        writer = self.writers.pop(trial.number, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def _hparam(hp: Any, param: Any) -> Any:
    """A search-space parameter as a TensorBoard HParam with its domain."""
    if param.kind == "categorical":
        choices = list(param.choices)
        kinds = {type(c) for c in choices}
        # TensorBoard's Discrete domain holds values of one type.
        if len(kinds) == 1 and kinds <= {bool, int, float, str}:
            return hp.HParam(param.name, hp.Discrete(choices))
        return hp.HParam(param.name)
    if param.kind == "int":
        return hp.HParam(param.name, hp.IntInterval(int(param.low), int(param.high)))
    return hp.HParam(param.name, hp.RealInterval(float(param.low), float(param.high)))


class MLflow(Watcher):
    """The study as an MLflow run, and each trial as a run nested in it."""

    label = "MLflow logging"

    def __init__(self, uri: str, *, owner: bool) -> None:
        import logging

        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        # MLflow says at INFO level each time it creates or upgrades its database's tables.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = uri
        self.owner = owner
        try:
            self.client = MlflowClient(tracking_uri=uri)
        except MlflowException as e:
            raise AutotuneError(
                f"mlflow: cannot log to {uri}: {str(e).splitlines()[0]} Give another URI with"
                f" --mlflow (e.g. {MLFLOW_URI})."
            ) from e
        self.experiment = ""
        self.parent = ""
        self.runs: dict[int, str] = {}
        self.study: optuna.Study | None = None
        self.metric = ""
        self.n_trials = 0

    def started(
        self, study: optuna.Study, spec: StudySpec, *, workers: int = 1, timeout: Any = None
    ) -> None:
        """Finds the study's run (or makes it, with the study's settings as its params)."""
        self.study, self.metric, self.n_trials = study, spec.metric, spec.n_trials
        stored = study.user_attrs.get(MLFLOW_ATTR) or {}
        if stored.get("uri") == self.uri:
            self.experiment, self.parent = stored["experiment"], stored["run"]
            if self.owner:
                self.client.update_run(self.parent, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(spec.name)
        self.experiment = (
            experiment.experiment_id if experiment else self.client.create_experiment(spec.name)
        )
        run = self.client.create_run(
            self.experiment, run_name=spec.name, tags={"autotune.study": spec.name}
        )
        self.parent = run.info.run_id
        settings = {
            "model": spec.model or spec.train, "metric": spec.metric,
            "direction": spec.direction, "n_trials": spec.n_trials,
            "max_epochs": spec.max_epochs, "sampler": spec.sampler, "pruner": spec.pruner,
            "seed": spec.seed, "data": spec.data.get("source"),
        }  # fmt: skip
        self._params(self.parent, settings)
        study.set_user_attr(
            MLFLOW_ATTR, {"uri": self.uri, "experiment": self.experiment, "run": self.parent}
        )

    def _params(self, run: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()])

    def _metrics(self, run: str, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.client.log_batch(
            run, metrics=[Metric(k, v, stamp, step) for k, v in _finite(metrics).items()]
        )

    def _trial_run(self, number: int) -> str:
        run = self.client.create_run(
            self.experiment,
            run_name=f"trial-{number}",
            tags={"mlflow.parentRunId": self.parent, "autotune.trial": str(number)},
        )
        self.runs[number] = run.info.run_id
        return self.runs[number]

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        self._params(self._trial_run(number), params)

    def epoch_ended(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        run = self.runs.get(number)
        if run is not None:
            self._metrics(run, metrics, epoch)

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        run = self.runs.pop(trial.number, None) or self._trial_run(trial.number)
        self.runs.pop(trial.number, None)
        attrs = trial.user_attrs
        tags = {"state": trial.state.name, "stop_reason": str(attrs.get("stop_reason", ""))}
        if attrs.get("fail_reason"):
            tags["fail_reason"] = str(attrs["fail_reason"])[:5000]
        for key, value in tags.items():
            self.client.set_tag(run, key, value)
        if trial.value is not None:
            self._metrics(run, {"value": trial.value}, int(attrs.get("epochs", 0)))
        self.client.set_terminated(run, "FAILED" if trial.state.name == "FAIL" else "FINISHED")

    def close(self) -> None:
        for run in self.runs.values():
            self.client.set_terminated(run, "KILLED")
        self.runs.clear()
        if self.owner and self.parent and self.study is not None:
            from autotune.study import best_trial

            best = best_trial(self.study)
            if best is not None and best.value is not None:
                self._metrics(self.parent, {f"best_{self.metric}": best.value}, best.number)
                self.client.set_tag(self.parent, "best_trial", str(best.number))
            from autotune.study import counts

            done = counts(self.study).finished >= self.n_trials
            self.client.set_terminated(self.parent, "FINISHED" if done else "KILLED")


def log_export(study: optuna.Study, directory: Path, echo: Echo) -> None:
    """Adds an exported model to the study's MLflow run, if the study logs to MLflow."""
    stored = study.user_attrs.get(MLFLOW_ATTR)
    if not stored:
        return
    if importlib.util.find_spec("mlflow") is None:
        echo(
            f"The study logs to MLflow ({stored['uri']}), but mlflow is not installed here, so"
            f" the model was not added to its run. Install it with: pip install 'autotune[mlflow]'"
        )
        return
    from mlflow import MlflowClient

    try:
        MlflowClient(tracking_uri=stored["uri"]).log_artifacts(
            stored["run"], str(directory), artifact_path=directory.name
        )
    except Exception as e:  # the export is done; MLflow's copy is extra
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        echo(f"The model was not added to MLflow run {stored['run']} ({stored['uri']}): {first}")
        return
    echo(f"Added to MLflow run {stored['run']} ({stored['uri']}) as artifact '{directory.name}'.")
