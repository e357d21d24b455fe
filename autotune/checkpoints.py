"""Checkpoints of running trials, and a retried trial that goes on from its last one.

Every ``checkpoint_every`` epochs (``"auto"``, the default: after every epoch that took
:data:`AUTO_SECONDS` or more; ``0``: never) a trial saves what it needs to go on: the model's
weights, the optimizer's state (its step, so the decay schedule goes on where it was), the
state of every random generator the training draws from (the layers' seed generators, NumPy's,
Python's), the epoch, and the reporter's state (the values so far and early stopping's).

They go to an Optuna artifact store (``optuna.artifacts.FileSystemArtifactStore``): a folder
beside the SQLite file (``autotune.db`` -> ``autotune-artifacts/``), ``./autotune-artifacts``
for a database server, or ``artifacts = "DIR"`` in the study file (``--artifacts DIR``), which
every worker must reach. A trial keeps one checkpoint, replaced in place as it goes, listed
among the trial's artifacts in optuna-dashboard.

A trial whose worker died is failed once its heartbeat is ``grace_period`` old, and Optuna's
``RetryHeartbeatStaleTrialCallback`` queues its params again; a trial stopped by Ctrl-C is
queued again on resume. The new trial loads the last checkpoint of the one it retries, reports
that trial's values for the epochs before it (so its learning curve is one curve), trains on
from there with the same seed, and records ``resumed_from_epoch`` and ``resumed_from_trial``.

When a trial ends, its checkpoint is removed, and a retry removes (or goes on writing) the one
it went on from, so the folder holds the running trials' checkpoints and one model: the best
complete trial's, as it ended training, kept as the study's artifact ``best-model.keras`` and
replaced when a better trial comes (``autotune best`` trains the best epoch again to export).
A removed artifact is taken off a running trial's list the way optuna-dashboard deletes one
(its meta set to null), which Optuna's own ``get_all_artifact_meta`` does not expect.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import storage as storage_module

if TYPE_CHECKING:
    import numpy as np
    import optuna

    from autotune.spec import StudySpec

AUTO = "auto"
# "auto": a checkpoint after each epoch that took at least this long.
AUTO_SECONDS = 5.0
# On a trial: {"artifact": id, "epoch": epochs done} of its checkpoint.
CHECKPOINT_ATTR = "checkpoint"
# On the study: {"artifact": id, "trial": number} of the best trial's model.
BEST_MODEL_ATTR = "autotune:best_model"
_ARTIFACTS_PREFIX = "artifacts:"  # optuna.artifacts keeps an artifact's meta under this key


def folder(spec: StudySpec, url: str) -> Path:
    """Where the study's artifacts go (see the module's docstring)."""
    return Path(spec.artifacts) if spec.artifacts else default_folder(url)


def default_folder(url: str) -> Path:
    """The artifact folder of a storage: beside an SQLite file, else ``./autotune-artifacts``."""
    if url.startswith("sqlite"):
        database = storage_module.sqlite_path(url)
        return database.with_name(f"{database.stem}-artifacts")
    return Path("autotune-artifacts")


class Store:
    """An Optuna file-system artifact store whose folder is made when first written to, and
    whose files are replaced whole (a worker killed mid-write leaves the last checkpoint)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, artifact_id: str, data: bytes) -> None:
        """Writes ``data`` as artifact ``artifact_id``, replacing it at once when complete."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=".writing-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path / artifact_id)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, artifact_id: str) -> bytes:
        return (self.path / artifact_id).read_bytes()

    def remove(self, artifact_id: str) -> None:
        (self.path / artifact_id).unlink(missing_ok=True)


@dataclass
class Resume:
    """What a retried trial goes on from."""

    trial: int  # the attempt it retries
    seed: int | None  # that attempt's seed
    epoch: int  # epochs done at its last checkpoint (0: none)
    payload: dict[str, Any] | None  # the checkpoint itself
    artifact: str | None = None  # where it lies in the store


def resume_point(trial: optuna.Trial, store: Store) -> Resume | None:
    """The attempt ``trial`` retries (a dead worker's, or one stopped by Ctrl-C) and its last
    checkpoint; None for a first attempt. A checkpoint that cannot be read (gone, another
    folder, cut short) is no checkpoint: the retry starts from epoch 0."""
    import optuna

    storage = trial.storage
    frozen = storage.get_trial(trial._trial_id)
    history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(frozen)
    number = history[-1] if history else frozen.user_attrs.get("retry_of")
    if number is None:
        return None
    study_id = trial.study._study_id
    attempt = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number))
    seed = attempt.user_attrs.get("seed")
    saved = attempt.user_attrs.get(CHECKPOINT_ATTR)
    if not saved:
        return Resume(number, seed, 0, None)
    try:
        payload = pickle.loads(store.read(saved["artifact"]))
    except Exception:
        return Resume(number, seed, 0, None)
    return Resume(number, seed, int(saved["epoch"]), payload, saved["artifact"])


class Checkpoints:
    """One trial's checkpoints: when one is due, saving it in place, and removing it.

    Args:
        trial: The running trial.
        store: The study's artifact store.
        every: Epochs between checkpoints, 0 for none, or ``"auto"``.
    """

    def __init__(self, trial: optuna.Trial, store: Store, every: int | str) -> None:
        self.trial = trial
        self.store = store
        self.every = every
        self.artifact: str | None = None
        self._epoch_began = time.monotonic()
        # A retry of a dead worker's trial is made with that trial's attributes, its
        # checkpoint's artifact among them: it goes on writing that one, and removes it when
        # it ends.
        inherited = trial.user_attrs.get(CHECKPOINT_ATTR)
        if inherited and _meta_key(inherited["artifact"]) in _system_attrs(trial):
            self.artifact = inherited["artifact"]

    def due(self, epoch: int) -> bool:
        """Whether a checkpoint is due after 0-based ``epoch``."""
        now = time.monotonic()
        took, self._epoch_began = now - self._epoch_began, now
        if self.every == AUTO:
            return took >= AUTO_SECONDS
        return bool(self.every) and (epoch + 1) % int(self.every) == 0

    def save(self, epochs: int, payload: dict[str, Any]) -> None:
        """Saves the trial's state after ``epochs`` epochs, replacing its last checkpoint."""
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        if self.artifact is None:
            self.artifact = str(uuid.uuid4())
            meta = {
                "artifact_id": self.artifact,
                "filename": f"checkpoint-trial-{self.trial.number}.pkl",
                "mimetype": "application/octet-stream",
                "encoding": None,
            }
            self.store.write(self.artifact, data)
            self.trial.storage.set_trial_system_attr(
                self.trial._trial_id, _meta_key(self.artifact), json.dumps(meta)
            )
        else:
            self.store.write(self.artifact, data)
        self.trial.set_user_attr(CHECKPOINT_ATTR, {"artifact": self.artifact, "epoch": epochs})

    def discard(self) -> None:
        """Removes the trial's checkpoint as it ends (while it still runs, so that its artifact
        list can still be changed: optuna-dashboard's way of deleting one)."""
        if self.artifact is None:
            return
        _forget(self.trial, self.artifact)
        self.trial.set_user_attr(CHECKPOINT_ATTR, None)
        self.store.remove(self.artifact)
        self.artifact = None


def release(trial: optuna.Trial, resume: Resume, saving: Checkpoints | None, store: Store) -> None:
    """Once a retry has gone on from its attempt's checkpoint: removes that checkpoint, unless
    the retry goes on writing it (see :class:`Checkpoints`). The failed attempt keeps its entry
    in its artifact list (a finished trial's cannot change); the file is gone."""
    if resume.artifact is None or (saving is not None and saving.artifact == resume.artifact):
        return
    if _meta_key(resume.artifact) in _system_attrs(trial):
        _forget(trial, resume.artifact)
    store.remove(resume.artifact)


def _meta_key(artifact: str) -> str:
    return _ARTIFACTS_PREFIX + artifact


def _system_attrs(trial: optuna.Trial) -> dict[str, Any]:
    return trial.storage.get_trial_system_attrs(trial._trial_id)


def _forget(trial: optuna.Trial, artifact: str) -> None:
    """Takes an artifact off a running trial's list: optuna-dashboard's way, its meta set to
    null (the dashboard skips it; Optuna's ``get_all_artifact_meta`` expects none such)."""
    trial.storage.set_trial_system_attr(trial._trial_id, _meta_key(artifact), json.dumps(None))


def model_bytes(model: Any) -> bytes:
    """``model`` as a ``.keras`` file's bytes."""
    with tempfile.TemporaryDirectory() as folder_:
        path = Path(folder_) / "model.keras"
        model.save(path)
        return path.read_bytes()


def could_be_best(study: optuna.Study, value: float) -> bool:
    """Whether ``value`` beats every complete trial's so far."""
    import optuna

    try:
        best = study.best_trial
    except ValueError:
        return True
    if best.value is None:
        return True
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return value > best.value if maximize else value < best.value


def keep_best(study: optuna.Study, trial: optuna.trial.FrozenTrial, model: bytes,
              store: Store) -> bool:  # fmt: skip
    """Keeps ``model`` as the study's best model if ``trial`` (told) is the study's best trial
    now; returns whether it did. The model is one artifact of the study, ``best-model.keras``,
    written whole in place of the last one; the study's ``autotune:best_model`` names the
    trial it came from."""
    try:
        if study.best_trial.number != trial.number:
            return False
    except ValueError:
        return False
    artifact = str(uuid.uuid5(uuid.NAMESPACE_URL, f"autotune:{study.study_name}:best-model"))
    store.write(artifact, model)
    storage, study_id = study._storage, study._study_id
    key = _meta_key(artifact)
    if key not in storage.get_study_system_attrs(study_id):
        meta = {"artifact_id": artifact, "filename": "best-model.keras",
                "mimetype": "application/zip", "encoding": None}  # fmt: skip
        storage.set_study_system_attr(study_id, key, json.dumps(meta))
    study.set_user_attr(BEST_MODEL_ATTR, {"artifact": artifact, "trial": trial.number})
    return True


# What a checkpoint holds besides the reporter's state: see capture() and restore().


def _seed_states(model: Any) -> list[Any]:
    """The state variables of every seed generator in the model (dropout, noise layers)."""
    states = []
    for layer in model._flatten_layers(include_self=True):
        for generator in getattr(layer, "_seed_generators", []):
            states.append(generator.state)
    return states


def capture(model: Any, optimizer: Any) -> dict[str, Any]:
    """The training state of ``model`` and ``optimizer``, and the global random generators'."""
    import numpy as np

    return {
        "weights": [np.array(w) for w in model.get_weights()],
        "optimizer": [np.array(v.numpy()) for v in optimizer.variables] if optimizer else [],
        "seeds": [np.array(s.numpy()) for s in _seed_states(model)],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def restore(model: Any, optimizer: Any, saved: dict[str, Any], example: np.ndarray) -> None:
    """Puts a captured training state back into a new ``model`` and ``optimizer`` of the same
    configuration.

    Raises:
        ValueError: The checkpoint does not fit the model (another configuration).
    """
    import numpy as np

    if not model.built:
        model(example[:1], training=False)  # a subclassed model makes its weights when called
    model.set_weights(saved["weights"])
    if optimizer is not None and saved["optimizer"]:
        optimizer.build(model.trainable_variables)
        variables = optimizer.variables
        if len(variables) != len(saved["optimizer"]):
            raise ValueError(
                f"the optimizer holds {len(variables)} variables, the checkpoint"
                f" {len(saved['optimizer'])}"
            )
        for variable, value in zip(variables, saved["optimizer"], strict=True):
            variable.assign(value)
    states = _seed_states(model)
    for state, value in zip(states, saved["seeds"], strict=False):
        state.assign(value)
    np.random.set_state(saved["numpy"])
    random.setstate(saved["python"])
