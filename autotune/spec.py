"""Study files: their format, validation, and finding one by name.

A study file is TOML; see ``studies/circles.toml``. Loading one checks every key, so that a typo
stops the command with one line naming the file, the key and what is allowed, before any trial
is spent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune import data as data_module
from autotune import metrics as metrics_module
from autotune import models as models_module
from autotune import references
from autotune.data import splits as data_splits
from autotune.errors import StudySpecError
from autotune.models import ALLOWED as ALLOWED_MODELS
from autotune.models import FAMILIES, Family
from autotune.optimizers import SPACE as OPTIMIZER_SPACE
from autotune.pruners import PRUNERS, make_pruner
from autotune.samplers import SAMPLERS, make_sampler
from autotune.space import Space, build_space, space_hash, space_to_dict
from autotune.storage import quiet_optuna

PACKAGED_STUDIES = Path(__file__).parent / "studies"
DIRECTIONS = ("maximize", "minimize")

# The training parameters every family shares; "full" batches are the whole training split.
TRAINING_SPACE: dict[str, Any] = {
    "batch_size": {"low": 16, "high": 1024, "log": True},
    **OPTIMIZER_SPACE,
}

# key -> (type, description of the allowed values)
_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a study name"),
    "model": (str, "a model family: " + ALLOWED_MODELS),
    "direction": (str, "maximize or minimize"),
    "metric": (str, "a validation metric such as val_accuracy, val_loss or val_auc"),
    "metrics": (list, 'a list of metrics to score too, such as ["auc", "f1"]'),
    "train": (str, "your training loop, as 'file.py:train' or 'package.module:train'"),
    "fit": (str, "your fit, as 'file.py:fit' or 'package.module:fit'"),
    "n_trials": (int, "a whole number of trials, at least 1"),
    "max_epochs": (int, "a whole number of epochs, at least 1"),
    "timeout": ((int, float), "seconds, a positive number"),
    "sampler": (str, "one of " + ", ".join(sorted(SAMPLERS))),
    "pruner": (str, "one of " + ", ".join(sorted(PRUNERS))),
    "seed": (int, "a whole number, 0 or more"),
    "heartbeat_interval": (int, "seconds between a running trial's heartbeats"),
    "grace_period": (int, "seconds without a heartbeat before a trial counts as dead"),
    "sampler_options": (dict, "a table of keyword arguments for the sampler"),
    "pruner_options": (dict, "a table of keyword arguments for the pruner"),
    "data": (dict, "a table with a source"),
    "early_stopping": (dict, "a table with patience and min_delta"),
    "space": (dict, "a table of parameter definitions"),
    "tensorboard": ((bool, str), "true, or the folder of TensorBoard's logs"),
    "mlflow": ((bool, str), "true, or an MLflow tracking URI"),
    "checkpoint_every": ((int, str), 'a whole number of epochs (0: never), or "auto"'),
    "artifacts": (str, "the folder of checkpoints and the best model"),
}
# The stored form also holds the folder where relative paths start (the study file's), so that
# workers elsewhere find the user's files; a study file has no need to set it.
_STORED_KEYS: dict[str, tuple[type, str]] = {"folder": (str, "a folder's path")}
_EARLY_STOPPING_KEYS = ("min_delta", "patience")
# Seeds feed NumPy and TensorFlow, which take 32-bit unsigned seeds.
MAX_SEED = 2**32 - 1
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60
# What a user's training loop and a user's fit take.
TRAIN_ARGUMENTS = ("params", "data", "reporter")
FIT_ARGUMENTS = ("params", "model", "data", "callbacks")


@dataclass(frozen=True)
class StudySpec:
    """A validated study file, resolved: its model family imported and its space built, once.

    Make one with :func:`from_dict`, :func:`load` or :func:`resolve`, which validate it.

    Attributes:
        name: The study's name in the storage.
        family: The model family that ``model`` names (a user's builder, imported).
        space: The search space: the family's default space plus the training space, narrowed
            by the study file's ``[space]``, which may add parameters for a user's own family.
        model: The model family's name or reference (``""`` with a training loop).
        metrics: Metrics that autotune scores on the validation split besides the study's
            (see :mod:`autotune.metrics`).
        train: The reference of the user's training loop, which builds and trains its model.
        fit: The reference of the user's ``fit``, which trains the compiled model.
        loop: The training loop itself, imported.
        fit_function: The user's ``fit`` itself, imported.
        direction: ``"maximize"`` or ``"minimize"``, implied by ``metric`` when left out.
        metric: The validation metric that is the trial's value, pruned on and early-stopped on.
        n_trials: The study's total of finished (complete or pruned) trials, across runs and
            workers.
        max_epochs: The most epochs one trial trains.
        timeout: Seconds after which a run stops starting new trials, or None.
        sampler, pruner: Names from :data:`SAMPLERS` and :data:`PRUNERS`.
        seed: Seeds the sampler and each trial's weights.
        data: The validated ``[data]`` table.
        patience, min_delta: Early stopping inside each trial.
        space_overrides: The study file's ``[space]`` table.
        folder: Where the relative paths of ``model`` and ``[data] path`` start: the study file's
            folder (stored with the study, so that workers find the user's files too).
        source: Where the spec came from, for messages.
        tensorboard: Log each trial for TensorBoard: True (``./tensorboard``) or a folder
            (see :mod:`autotune.trackers`).
        mlflow: Log the study and its trials to MLflow: True (``sqlite:///mlflow.db``) or a
            tracking URI.
        checkpoint_every: Epochs between a trial's checkpoints, 0 for none, or ``"auto"``
            (see :mod:`autotune.checkpoints`).
        artifacts: The folder of checkpoints and the best model; None for the default.
    """

    name: str
    data: Mapping[str, Any]
    family: Family = field(repr=False, compare=False)
    space: Space = field(repr=False, compare=False)
    model: str = "mlp"
    direction: str = "maximize"
    metric: str = "val_accuracy"
    metrics: tuple[str, ...] = ()
    train: str | None = None
    fit: str | None = None
    n_trials: int = 50
    max_epochs: int = 100
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: int = 0
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD
    sampler_options: Mapping[str, Any] = field(default_factory=dict)
    pruner_options: Mapping[str, Any] = field(default_factory=dict)
    patience: int = 10
    min_delta: float = 0.0
    space_overrides: Mapping[str, Any] = field(default_factory=dict)
    folder: str = ""
    source: str = "<spec>"
    loop: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    fit_function: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    tensorboard: bool | str = False
    mlflow: bool | str = False
    checkpoint_every: int | str = "auto"
    artifacts: str | None = None

    @property
    def task(self) -> str:
        return data_module.task_of(self.data)

    def with_overrides(self, **overrides: Any) -> StudySpec:
        """A copy with the given fields replaced (None leaves a field as it is), re-validated."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        raw = self.to_dict()
        raw.update(given)
        if "metric" in given and "direction" not in given:
            raw.pop("direction", None)
        return from_dict(raw, source=self.source)

    def to_dict(self) -> dict[str, Any]:
        """The spec in the study file's form (what is stored with the study)."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name
            not in (
                "family", "space", "loop", "fit_function", "patience", "min_delta",
                "space_overrides", "source",
            )
        }  # fmt: skip
        out["early_stopping"] = {"patience": self.patience, "min_delta": self.min_delta}
        out["space"] = dict(self.space_overrides)
        out["data"] = dict(self.data)
        out["metrics"] = list(self.metrics)
        for key in ("timeout", "train", "fit", "tensorboard", "mlflow", "artifacts"):
            if out[key] is None or out[key] is False:
                del out[key]
        if out["checkpoint_every"] == "auto":
            del out["checkpoint_every"]
        if not self.metrics:
            del out["metrics"]
        if self.train:
            del out["model"]
        return json.loads(json.dumps(out))

    def objective(self) -> dict[str, Any]:
        """What defines a trial's value: trials made under different objectives do not mix."""
        # The contents of the user's split files, so that a changed one is caught on resume.
        digest = data_splits.digest(self.data, self.folder, self.source)
        out = {
            "model": self.model,
            "space": space_to_dict(self.space),
            "data": {**self.data, data_splits.DIGEST: digest} if digest else dict(self.data),
            "metric": self.metric,
            "direction": self.direction,
            "max_epochs": self.max_epochs,
            "early_stopping": {"patience": self.patience, "min_delta": self.min_delta},
        }
        # Only when set, so that the studies made before these keys keep their fingerprints.
        out.update({k: v for k, v in (("train", self.train), ("fit", self.fit)) if v})
        return out

    def fingerprint(self) -> str:
        """A stable hash of :meth:`objective`."""
        text = json.dumps(self.objective(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def space_hash(self) -> str:
        return space_hash(self.space)


def from_dict(
    raw: Mapping[str, Any], source: str = "<spec>", *, base: str | os.PathLike[str] | None = None
) -> StudySpec:
    """Validates a study file's contents.

    Args:
        raw: The study file's contents.
        source: Where they come from, for messages.
        base: The study file's folder, where its relative paths start; by default the
            current directory.

    Raises:
        StudySpecError: With ``source``, the key, the value and what is allowed.
        ModelError: The user's model family cannot be imported or its ``SPACE`` is malformed.
    """
    _refuse_non_finite(raw, source)
    unknown = sorted(set(raw) - set(_KEYS) - set(_STORED_KEYS))
    if unknown:
        raise StudySpecError(
            f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}."
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind, allowed = _KEYS[key] if key in _KEYS else _STORED_KEYS[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kind):
            raise StudySpecError(f"{source}: '{key}' must be {allowed}, but got {value!r}.")
        values[key] = value
    if "data" not in values:
        raise StudySpecError(
            f'{source}: missing [data] table; add for example [data] source = "circles".'
        )
    values["data"] = data_module.validate(values["data"], source)
    values["folder"] = os.path.normpath(
        os.path.join(os.path.abspath(base or os.getcwd()), values.get("folder", "."))
    )
    values.setdefault("name", Path(source).stem if source.endswith(".toml") else "")
    check_name(values["name"], source)

    for key in ("n_trials", "max_epochs", "heartbeat_interval", "grace_period"):
        if key in values and values[key] < 1:
            raise StudySpecError(f"{source}: '{key}' must be at least 1, but got {values[key]}.")
    if values.get("seed", 0) < 0 or values.get("seed", 0) > MAX_SEED:
        raise StudySpecError(
            f"{source}: 'seed' must lie in [0, {MAX_SEED}], but got {values['seed']}."
        )
    interval = values.get("heartbeat_interval", HEARTBEAT_INTERVAL)
    grace = values.get("grace_period", GRACE_PERIOD)
    if grace < 2 * interval:
        raise StudySpecError(
            f"{source}: grace_period ({grace} s) must be at least twice heartbeat_interval"
            f" ({interval} s): a live trial whose heartbeat comes a little late would otherwise"
            f" be failed as dead. Raise grace_period to {2 * interval} or more."
        )
    if values.get("timeout") is not None and values["timeout"] <= 0:
        raise StudySpecError(f"{source}: 'timeout' must be positive, but got {values['timeout']}.")
    for key in ("tensorboard", "mlflow", "artifacts"):
        if values.get(key) == "":
            raise StudySpecError(f"{source}: '{key}' must be {_KEYS[key][1]}, but got ''.")
    every = values.get("checkpoint_every", "auto")
    if (isinstance(every, str) and every != "auto") or (isinstance(every, int) and every < 0):
        raise StudySpecError(
            f"{source}: 'checkpoint_every' must be {_KEYS['checkpoint_every'][1]}, but got"
            f" {every!r}."
        )
    model = values.get("model", "mlp")
    if model not in FAMILIES and not references.is_reference(model):
        raise StudySpecError(f"{source}: unknown model '{model}'; allowed: {ALLOWED_MODELS}.")
    for key, registry in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if key in values and values[key] not in registry:
            raise StudySpecError(
                f"{source}: unknown {key} '{values[key]}'; allowed: {', '.join(sorted(registry))}."
            )

    early = values.pop("early_stopping", {})
    unknown = sorted(set(early) - set(_EARLY_STOPPING_KEYS))
    if unknown:
        raise StudySpecError(
            f"{source}: [early_stopping] has unknown key(s) {', '.join(unknown)};"
            f" allowed: {', '.join(_EARLY_STOPPING_KEYS)}."
        )
    patience = early.get("patience", 10)
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise StudySpecError(
            f"{source}: [early_stopping] patience must be a whole number of epochs, at least 1,"
            f" but got {patience!r}."
        )
    min_delta = early.get("min_delta", 0.0)
    if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
        raise StudySpecError(
            f"{source}: [early_stopping] min_delta must be a number >= 0, but got {min_delta!r}."
        )

    family, loop, fit_function = _user_code(values, source)
    _check_metrics(values, family, source)

    overrides = values.pop("space", {})
    space = build_space(
        {**TRAINING_SPACE, **family.space},
        overrides,
        allow_new=family.user,
        where=f"{source}: [space]",
    )
    _check_options(values, space, source)
    return StudySpec(
        family=family,
        space=space,
        loop=loop,
        fit_function=fit_function,
        patience=patience,
        min_delta=float(min_delta),
        space_overrides=overrides,
        source=source,
        **values,
    )


# Letters, digits, "_", "." and "-": a name that is safe in a file name (NAME-report.html) and
# that PostgreSQL, MySQL/MariaDB and SQLite all store as it is.
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _refuse_non_finite(raw: Any, source: str, where: str = "") -> None:
    """Refuses NaN and infinity anywhere in a study file: a NaN timeout never times out, a NaN
    bound makes no range."""
    if isinstance(raw, float) and not math.isfinite(raw):
        raise StudySpecError(
            f"{source}: '{where}' is {raw}, which is not a number a study can use; give a"
            f" finite number."
        )
    items = (
        raw.items() if isinstance(raw, Mapping) else enumerate(raw) if isinstance(raw, list) else ()
    )
    for key, value in items:
        _refuse_non_finite(value, source, f"{where}.{key}" if where else str(key))


def check_name(name: str, source: str) -> None:
    """Refuses a study name that is empty, too long, or holds characters outside the rule.

    Raises:
        StudySpecError: Naming the file, the name (shortened) and the rule.
    """
    if not NAME_RULE.fullmatch(name):
        shown = repr(name if len(name) <= 40 else name[:40] + "...")
        raise StudySpecError(
            f"{source}: name {shown} is not a study name: use 1 to 128 letters, digits, '_', '.'"
            f" or '-', starting with a letter or a digit (it names files, and every supported"
            f" database must store it as it is)."
        )


def _user_code(
    values: dict[str, Any], source: str
) -> tuple[Family, Callable[..., Any] | None, Callable[..., Any] | None]:
    """The model family, and the user's training loop or ``fit`` if the study names one."""
    train, fit = values.get("train"), values.get("fit")
    if train and fit:
        raise StudySpecError(
            f"{source}: names both train and fit; a training loop trains the model itself, so"
            f" keep one of them."
        )
    if train:
        if "model" in values:
            raise StudySpecError(
                f"{source}: train = '{train}' builds and trains its own model, so model ="
                f" '{values['model']}' would not be used; leave model out (the loop's module"
                f" may define SPACE)."
            )
        label = f"{source}: train '{train}'"
        loop, space = models_module.user_code(train, values["folder"], TRAIN_ARGUMENTS, label=label)
        values["model"] = ""
        return Family(train, space, None, user=True), loop, None
    family = models_module.family(values.get("model", "mlp"), values["folder"], where=source)
    if fit:
        label = f"{source}: fit '{fit}'"
        function, _ = models_module.user_code(fit, values["folder"], FIT_ARGUMENTS, label=label)
        return family, None, function
    return family, None, None


def _check_metrics(values: dict[str, Any], family: Family, source: str) -> None:
    """The study's metric and direction, and the extra ``metrics``: known ones, or the user's."""
    task = data_module.task_of(values["data"])
    logged = data_module.METRICS[task]
    scorers = metrics_module.SCORERS[task]
    metric = values.setdefault("metric", next(iter(logged)))
    extra = values.get("metrics", [])
    unknown = [m for m in extra if not isinstance(m, str) or m not in scorers]
    if unknown:
        raise StudySpecError(
            f"{source}: metrics has {', '.join(map(repr, unknown))}, which autotune does not"
            f" score for {task}; allowed: {', '.join(scorers)}."
        )
    values["metrics"] = tuple(extra)
    if not metric.startswith("val_"):
        raise StudySpecError(
            f"{source}: metric must name a validation metric, val_<name> as Keras logs it"
            f" (val_accuracy, val_auc, ...), but got '{metric}'."
        )
    own = family.user or values.get("fit")
    if not own and metric not in logged and metric.removeprefix("val_") not in scorers:
        allowed = [*logged, *(f"val_{name}" for name in scorers)]
        raise StudySpecError(
            f"{source}: metric '{metric}' is not logged for {task}; allowed: {', '.join(allowed)}."
            f" A model, fit or training loop of your own may log others."
        )
    known = metrics_module.direction_of(metric)
    direction = values.setdefault("direction", known)
    if direction is None:
        raise StudySpecError(
            f"{source}: autotune does not know which way {metric} improves; set direction ="
            f' "maximize" or "minimize".'
        )
    if direction not in DIRECTIONS:
        raise StudySpecError(
            f"{source}: direction must be maximize or minimize, but got '{direction}'."
        )
    if known is not None and direction != known:
        raise StudySpecError(
            f"{source}: {metric} improves when it goes {'up' if known == 'maximize' else 'down'},"
            f" so direction must be '{known}', not '{direction}'."
        )


def _check_options(values: Mapping[str, Any], space: Space, source: str) -> None:
    """Builds the sampler and the pruner once, so that a keyword or value their Optuna classes
    do not take is refused when the study file loads, not when the study runs."""
    try:
        with quiet_optuna():
            make_sampler(
                values.get("sampler", "tpe"), None, values.get("sampler_options", {}), space
            )
        make_pruner(
            values.get("pruner", "hyperband"),
            values.get("max_epochs", 100),
            values.get("pruner_options", {}),
        )
    except StudySpecError as e:
        raise StudySpecError(f"{source}: {e}") from e


def load(path: str | os.PathLike[str]) -> StudySpec:
    """Reads and validates one study file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise StudySpecError(f"{path}: not valid TOML: {e}.") from e
    except OSError as e:
        raise StudySpecError(f"{path}: cannot be read: {e.strerror}.") from e
    return from_dict(raw, source=str(path), base=path.parent)


def find(name_or_path: str) -> Path:
    """Finds a study file: a path, then ``./studies/NAME.toml``, then the shipped studies.

    Raises:
        StudySpecError: Nothing is found; the message lists the places looked in.
    """
    as_path = Path(name_or_path)
    if as_path.suffix == ".toml" or os.sep in name_or_path:
        if as_path.is_file():
            return as_path
        raise StudySpecError(f"No study file at {name_or_path}. Check the path.")
    for folder in (Path.cwd() / "studies", PACKAGED_STUDIES):
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    raise StudySpecError(
        f"No study named '{name_or_path}': looked for ./studies/{name_or_path}.toml and the"
        f" shipped studies ({', '.join(available()['shipped'])}). Give a path to a .toml file"
        f" or one of those names."
    )


def resolve(name_or_path: str) -> StudySpec:
    """Finds and loads a study file by path or name."""
    return load(find(name_or_path))


def available() -> dict[str, list[str]]:
    """Study files by place: ``./studies`` and the ones shipped with the package."""
    local = Path.cwd() / "studies"
    return {
        "local": sorted(p.stem for p in local.glob("*.toml")) if local.is_dir() else [],
        "shipped": sorted(p.stem for p in PACKAGED_STUDIES.glob("*.toml")),
    }
