"""A study in its storage: open, create or load it, check what it searches, read its trials.

Everything that asks a study a question goes through here, under one rule: a trial that a
worker ended at once because earlier trials already filled the total (state FAIL,
``stop_reason = surplus``) never trained, so it counts nowhere: not as finished, not as failed.

The study file that last ran the study is stored with it (a study user attribute), with a
fingerprint of what defines a trial's value, so that any worker, ``best`` and the report
rebuild the same spec from the storage alone, and a run with another space, data or model is
refused instead of mixing incomparable trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune import history
from autotune import storage as storage_module
from autotune.data.splits import what_changed
from autotune.errors import (
    NoCompleteTrialError,
    StudyMismatchError,
    StudyNotFoundError,
)
from autotune.pruners import make_pruner
from autotune.samplers import make_sampler
from autotune.spec import StudySpec, from_dict

if TYPE_CHECKING:
    import optuna

SPEC_ATTR = "autotune:spec"
OBJECTIVE_ATTR = "autotune:objective"
FINGERPRINT_ATTR = "autotune:fingerprint"
SURPLUS = "surplus"


def open_study(
    spec: StudySpec, url: str, *, sampler_seed: int | None = None, found: optuna.Study | None = None
) -> optuna.Study:
    """Creates the study in the storage, or loads it; checks that it searches the same
    objective; and stores ``spec`` with it.

    Safe when several workers start at the same moment: Optuna creates the study once and the
    others load it. The sampler and pruner, which Optuna does not store, are built from
    ``spec``. Call it once every check has passed (see :func:`find_study`, whose study, given
    as ``found``, hands over the trials it has read): it writes.

    Raises:
        StudyMismatchError: The stored study was searched with another space, data, model,
            metric, direction, epochs or early stopping, or was not made by autotune.
        StorageError: The storage cannot be opened.
    """
    import optuna

    storage = _storage_for(spec, url)
    with storage_module.quiet_optuna():
        study = optuna.create_study(
            study_name=spec.name,
            storage=storage,
            sampler=make_sampler(spec.sampler, sampler_seed, spec.sampler_options, spec.space),
            pruner=make_pruner(spec.pruner, spec.max_epochs, spec.pruner_options),
            direction=spec.direction,  # type: ignore[arg-type]  # validated: maximize|minimize
            load_if_exists=True,
        )
    _check_name(storage, spec, url)
    check_stored(study, spec, url)
    record(study, spec)
    _index_states(storage_module.rdb_of(study._storage))
    if spec.sampler != "grid":  # the grid sampler must see every trial to visit each point once
        history.through_window(study, like=found)
    return study


# autotune's one addition to Optuna's tables: trials by study, state and number, so that the
# counts a worker takes before each trial read this index alone, not the table (3 to 4 times
# faster at 100,000 trials).
STATE_INDEX = "ix_autotune_trials_study_state_number"


def _index_states(rdb: Any) -> None:
    """Adds :data:`STATE_INDEX` to the database once; several workers may race to."""
    if rdb is None:
        return
    import sqlalchemy as sa

    # A table of its own (the columns alone), so that Optuna's models never learn of the index
    # (Optuna creates its tables from them).
    trials = sa.Table("trials", sa.MetaData(), sa.Column("study_id"), sa.Column("state"),
                      sa.Column("number"))  # fmt: skip
    index = sa.Index(STATE_INDEX, trials.c.study_id, trials.c.state, trials.c.number)
    try:
        index.create(rdb.engine, checkfirst=True)
    except sa.exc.DBAPIError as e:
        if "exist" not in str(e.orig).lower() and "duplicate" not in str(e.orig).lower():
            raise


def find_study(spec: StudySpec, url: str) -> optuna.Study | None:
    """The stored study of ``spec``, checked against it, or None while there is none; writes
    nothing (Optuna's tables aside, in a database that has none yet).

    Raises:
        StudyMismatchError: As :func:`open_study`.
        StorageError: The storage cannot be opened.
    """
    import optuna

    if storage_module.is_sqlite(url) and not storage_module.sqlite_path(url).is_file():
        return None
    storage = _storage_for(spec, url)
    try:
        storage.get_study_id_from_name(spec.name)
    except KeyError:
        return None
    _check_name(storage, spec, url)
    with storage_module.quiet_optuna():
        study = optuna.load_study(study_name=spec.name, storage=storage)
    check_stored(study, spec, url)
    if spec.sampler != "grid":  # its window is read while the run loads TensorFlow and data
        history.through_window(study)
    return study


def _storage_for(spec: StudySpec, url: str) -> Any:
    return storage_module.open_storage(
        url, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period
    )


def _check_name(storage: Any, spec: StudySpec, url: str) -> None:
    # MySQL/MariaDB compare names without case: "Circles" would open study "circles".
    stored_name = storage.get_study_name_from_id(storage.get_study_id_from_name(spec.name))
    if stored_name != spec.name:
        raise StudyMismatchError(
            f"Study '{spec.name}' would open study '{stored_name}' in {storage_module.mask(url)},"
            f" whose database tells names apart by more than case. Give this study another"
            f" name (name = ... in {spec.source})."
        )


def check_stored(study: optuna.Study, spec: StudySpec, url: str) -> None:
    """Checks that ``study`` was searched with ``spec``'s objective, or has no trial yet.

    Raises:
        StudyMismatchError: Naming what changed and the ways out.
    """
    attrs = study.user_attrs
    stored = attrs.get(FINGERPRINT_ATTR)
    # Optuna keeps a study's direction for good, even while it has no trial.
    searched = has_trials(study) or study.direction.name.lower() != spec.direction
    if stored is None and searched:
        raise StudyMismatchError(
            f"Study '{spec.name}' in {storage_module.mask(url)} was not made by autotune."
            f" Give this study another name (name = ... in {spec.source})."
        )
    if searched and stored is not None and stored != spec.fingerprint():
        before = attrs.get(OBJECTIVE_ATTR, {})
        now = spec.objective()
        changed = sorted(k for k in now if before.get(k) != now[k]) or ["objective"]
        if "data" in changed:  # naming the split file whose contents changed
            changed[changed.index("data")] = what_changed(before.get("data"), now["data"])
        raise StudyMismatchError(
            f"Study '{spec.name}' in {storage_module.mask(url)} was searched with another"
            f" {', '.join(changed)}; its trials cannot be mixed with this run's. Undo the"
            f" change, give the study a new name (name = ... in {spec.source}), or start over"
            f" with `autotune delete --study {spec.name}`."
        )


def record(study: optuna.Study, spec: StudySpec) -> None:
    """Stores ``spec`` with ``study`` (what workers, ``best`` and the report read back), its
    objective's fingerprint, and its metric's name (optuna-dashboard's and the plots' label)."""
    attrs = study.user_attrs
    if attrs.get(FINGERPRINT_ATTR) != spec.fingerprint():
        study.set_user_attr(OBJECTIVE_ATTR, spec.objective())
        study.set_user_attr(FINGERPRINT_ATTR, spec.fingerprint())
    if attrs.get(SPEC_ATTR) != spec.to_dict():
        study.set_user_attr(SPEC_ATTR, spec.to_dict())
    if study.metric_names != [spec.metric]:
        with storage_module.quiet_optuna():  # set_metric_names is marked experimental
            study.set_metric_names([spec.metric])


def load_study(name: str, storage: str | None = None) -> optuna.Study:
    """Loads a study that exists, by name, without creating the study or the storage.

    Args:
        name: The study's name in the storage, or the path of its study file (``*.toml``).
        storage: A storage URL; by default ``$AUTOTUNE_STORAGE``, else ``./autotune.db``.

    Raises:
        StudyNotFoundError: The storage does not exist yet, or holds no such study; the message
            lists the studies it holds.
        StorageError: The storage cannot be opened.
    """

    url = storage_module.resolve_url(storage)
    if name.endswith(".toml"):
        from autotune.spec import load

        name = load(name).name
    require_existing(url)
    store = storage_module.open_storage(url)
    names = [s.study_name for s in store.get_all_studies()]
    if name not in names:
        raise StudyNotFoundError(
            f"No study '{name}' in {storage_module.mask(url)}"
            + (f"; it holds: {', '.join(sorted(names))}." if names else "; it holds none yet.")
            + f" Create it with `autotune run --study {name}`."
        )
    return _study_of(store, name)


def names(url: str) -> list[str]:
    """The names of the studies in the storage at ``url``; none while it does not exist."""
    if storage_module.is_sqlite(url) and not storage_module.sqlite_path(url).is_file():
        return []
    return [s.study_name for s in storage_module.open_storage(url).get_all_studies()]


def require_existing(url: str) -> None:
    """Refuses an SQLite storage whose file does not exist, rather than create an empty one.

    Raises:
        StudyNotFoundError: Naming the file and how to make it.
    """
    if storage_module.is_sqlite(url):
        path = storage_module.sqlite_path(url)
        if not path.is_file():
            raise StudyNotFoundError(
                f"No storage at {path} yet. Run a study first (autotune run --study circles),"
                f" or name another storage with --storage or $AUTOTUNE_STORAGE."
            )


def delete_study(study: optuna.Study) -> None:
    """Deletes ``study`` and all its trials from its storage, in one transaction.

    On a database the rows go table by table (Optuna's own delete loads every trial and its
    rows as objects first: 17 minutes and 6 GB for 100,000 trials on PostgreSQL).
    """
    import optuna

    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        optuna.delete_study(study_name=study.study_name, storage=study._storage)
        return
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trial_tables = (models.TrialParamModel, models.TrialValueModel,
                    models.TrialIntermediateValueModel, models.TrialUserAttributeModel,
                    models.TrialSystemAttributeModel, models.TrialHeartbeatModel)  # fmt: skip
    study_tables = (models.StudyUserAttributeModel, models.StudySystemAttributeModel,
                    models.StudyDirectionModel)  # fmt: skip
    study_id = study._study_id
    trial, whole = models.TrialModel, models.StudyModel
    trials = sa.select(trial.trial_id).where(trial.study_id == study_id)
    with rdb.engine.begin() as connection:
        for model in trial_tables:
            connection.execute(sa.delete(model).where(model.trial_id.in_(trials)))
        connection.execute(sa.delete(trial).where(trial.study_id == study_id))
        for model in study_tables:
            connection.execute(sa.delete(model).where(model.study_id == study_id))
        connection.execute(sa.delete(whole).where(whole.study_id == study_id))


def summaries(url: str) -> list[tuple[str, Counts, Any, float | None, str]]:
    """Every study in the storage at ``url``, by name: its counts, its total (``n_trials`` of
    its stored spec, or ``"?"``), its best value and its direction. Empty when the storage does
    not exist yet."""
    try:
        require_existing(url)
    except StudyNotFoundError:
        return []
    store = storage_module.open_storage(url)
    rows = []
    for summary in store.get_all_studies():
        study = _study_of(store, summary.study_name)
        best = best_trial(study)
        target = summary.user_attrs.get(SPEC_ATTR, {}).get("n_trials", "?")
        rows.append(
            (
                summary.study_name,
                counts(study),
                target,
                None if best is None else best.value,
                summary.direction.name.lower(),
            )
        )
    return sorted(rows, key=lambda row: row[0])


def _study_of(store: Any, name: str) -> optuna.Study:
    import optuna

    with storage_module.quiet_optuna():
        return optuna.load_study(study_name=name, storage=store)


def stored_spec(study: optuna.Study) -> StudySpec:
    """The spec that the last ``autotune run`` stored with ``study``.

    Raises:
        StudyMismatchError: The study was not made by autotune.
    """
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise StudyMismatchError(
            f"Study '{study.study_name}' holds no autotune study file; it was not made by"
            f" `autotune run`."
        )
    return from_dict(raw, source=f"study '{study.study_name}'")


def is_surplus(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial ended unrun because earlier ones already filled the study's total."""
    return trial.user_attrs.get("stop_reason") == SURPLUS


@dataclass(frozen=True)
class Counts:
    """A study's trials by state, surplus trials left out of every figure."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        """The trials that count toward the study's total: complete and pruned ones."""
        return self.complete + self.pruned

    @property
    def total(self) -> int:
        return self.finished + self.failed + self.running + self.waiting

    def __str__(self) -> str:
        named = [(n, s) for s, n in sorted(vars(self).items()) if n]
        return ", ".join(f"{n} {s}" for n, s in named) or "no trials"


def counts(study: optuna.Study) -> Counts:
    """The study's trials counted by state, under the one rule for surplus trials.

    On a database, one counting query (the work loop asks before every trial, and a study of
    many thousand trials would otherwise be read whole each time); elsewhere, the trials.
    """
    tally = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0}
    rdb = storage_module.rdb_of(study._storage)
    if rdb is not None:
        tally.update(_counted(rdb, study._study_id))
    else:
        for trial in all_trials(study):
            if not (trial.state.name == "FAIL" and is_surplus(trial)):
                tally[trial.state.name] += 1
    return Counts(tally["COMPLETE"], tally["PRUNED"], tally["FAIL"], tally["RUNNING"],
                  tally["WAITING"])  # fmt: skip


def _counted(rdb: Any, study_id: int) -> dict[str, int]:
    """The study's trials by state in the database, surplus trials left out.

    Two small queries however long the study: the trials by state (Optuna indexes trials by
    study), then the surplus ones among the failed (a surplus trial has ended FAIL).
    """
    import json

    import sqlalchemy as sa
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    trials = models.TrialModel.__table__
    attrs = models.TrialUserAttributeModel.__table__
    by_state = (
        sa.select(trials.c.state, sa.func.count())
        .where(trials.c.study_id == study_id)
        .group_by(trials.c.state)
    )
    surplus = (
        sa.select(sa.func.count())
        .select_from(trials.join(attrs, attrs.c.trial_id == trials.c.trial_id))
        .where(trials.c.study_id == study_id, trials.c.state == TrialState.FAIL,
               attrs.c.key == "stop_reason", attrs.c.value_json == json.dumps(SURPLUS))
    )  # fmt: skip
    with rdb.engine.connect() as connection:
        tally = {getattr(state, "name", str(state)): int(n)
                 for state, n in connection.execute(by_state).all()}  # fmt: skip
        if tally.get("FAIL"):
            tally["FAIL"] -= int(connection.execute(surplus).scalar_one())
    return tally


def taken_before(study: optuna.Study, number: int) -> int:
    """How many trials numbered below ``number`` finished or are running: the places of the
    study's total that they hold (a surplus trial has ended FAIL, so it holds none)."""
    live = ("COMPLETE", "PRUNED", "RUNNING")
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        return sum(1 for t in all_trials(study) if t.number < number and t.state.name in live)
    import sqlalchemy as sa
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    trials = models.TrialModel.__table__
    query = sa.select(sa.func.count()).where(
        trials.c.study_id == study._study_id,
        trials.c.number < number,
        trials.c.state.in_([TrialState[state] for state in live]),
    )
    with rdb.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def has_trials(study: optuna.Study) -> bool:
    """Whether the study holds any trial, by one query on a database."""
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        return bool(all_trials(study))
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trials = models.TrialModel.__table__
    query = sa.select(trials.c.trial_id).where(trials.c.study_id == study._study_id).limit(1)
    with rdb.engine.connect() as connection:
        return connection.execute(query).first() is not None


def trial_count(study: optuna.Study) -> int:
    """How many trials the study holds, in every state, by one query on a database."""
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        return len(all_trials(study))
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    model = models.TrialModel
    query = sa.select(sa.func.count()).where(model.study_id == study._study_id)
    with rdb.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def param_names(study: optuna.Study) -> list[str]:
    """The parameters the study's trials use, in the order they were first used."""
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        names: dict[str, None] = {}
        for trial in all_trials(study):
            names.update(dict.fromkeys(trial.params))
        return list(names)
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    params, trials = models.TrialParamModel, models.TrialModel
    query = (
        sa.select(params.param_name)
        .join(trials, trials.trial_id == params.trial_id)
        .where(trials.study_id == study._study_id)
        .group_by(params.param_name)
        .order_by(sa.func.min(params.param_id))
    )
    with rdb.engine.connect() as connection:
        return list(connection.execute(query).scalars().all())


def backend_of(study: optuna.Study) -> Any:
    """The storage under the study's windowed view or Optuna's trial cache."""
    return getattr(study._storage, "_backend", study._storage)


def all_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Every trial of the study, by number, read whole (what a worker's own view of the study,
    :mod:`autotune.history`, leaves out): for small studies, or a one-off read."""
    return backend_of(study).get_all_trials(study._study_id, deepcopy=False)


def trial_by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """One trial, by its number, read from the storage alone."""
    storage = study._storage
    return storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    )


def latest(study: optuna.Study, n: int) -> list[optuna.trial.FrozenTrial]:
    """The study's last ``n`` trials by number, read by one query on a database."""
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        return all_trials(study)[-n:]
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    model = models.TrialModel
    query = (
        sa.select(model.trial_id).where(model.study_id == study._study_id)
        .order_by(model.trial_id.desc()).limit(n)
    )  # fmt: skip
    with rdb.engine.connect() as connection:
        ids = connection.execute(query).scalars().all()
    return [rdb.get_trial(i) for i in reversed(ids)]


def pages(study: optuna.Study, size: int = 1000) -> Iterator[list[optuna.trial.FrozenTrial]]:
    """The study's trials by number, ``size`` at a time: a long study is read in bounded memory
    from a database (other storages hand over their list)."""
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        trials = all_trials(study)
        for first in range(0, len(trials), size):
            yield trials[first : first + size]
        return
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    model = models.TrialModel
    with rdb.engine.connect() as connection:
        ids = connection.execute(
            sa.select(model.trial_id).where(model.study_id == study._study_id)
            .order_by(model.trial_id)
        ).scalars().all()  # fmt: skip
    for first in range(0, len(ids), size):
        yield trials_by_id(study, ids[first : first + size])


def trials_by_id(study: optuna.Study, ids: list[int]) -> list[optuna.trial.FrozenTrial]:
    """The study's trials of these ids, whole, by id: on a database one read of them alone
    (with their params, values, attributes and curves), never of the rest of the study."""
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None:
        wanted = set(ids)
        return [t for t in all_trials(study) if t._trial_id in wanted]
    from optuna.storages._rdb import models
    from sqlalchemy import orm

    model = models.TrialModel
    with orm.Session(rdb.engine) as session:
        query = (
            session.query(model)
            .options(orm.selectinload(model.params), orm.selectinload(model.values),
                     orm.selectinload(model.user_attributes),
                     orm.selectinload(model.system_attributes),
                     orm.selectinload(model.intermediate_values))
            .filter(model.trial_id.in_(ids))
            .order_by(model.trial_id)
        )  # fmt: skip
        return [rdb._build_frozen_trial_from_trial_model(t) for t in query]


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial, or None while there is none."""
    best = ranked(study, 1)
    return best[0] if best else None


def require_best(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best complete trial.

    Raises:
        NoCompleteTrialError: No trial has completed yet.
    """
    best = best_trial(study)
    if best is None:
        raise NoCompleteTrialError(
            f"Study '{study.study_name}' has no complete trial yet, so it has no best model."
            f" Run it first: autotune run --study {study.study_name}"
        )
    return best


def ranked(study: optuna.Study, top: int | None = None) -> list[optuna.trial.FrozenTrial]:
    """The study's complete trials, best first in its direction (the earlier one on ties);
    the first ``top`` if given, which a database finds by one query."""
    import optuna

    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    if top is not None and top <= history.BEST and hasattr(study._storage, "best_trials"):
        return study._storage.best_trials(study._study_id, top)  # a worker's window has them
    rdb = storage_module.rdb_of(study._storage)
    if rdb is not None and top is not None:
        return [rdb.get_trial(i) for i in _best_ids(rdb, study._study_id, maximize, top)]
    complete = [t for t in all_trials(study) if t.state == optuna.trial.TrialState.COMPLETE]
    sign = -1.0 if maximize else 1.0
    return sorted(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))[:top]


def _best_ids(rdb: Any, study_id: int, maximize: bool, top: int) -> list[int]:
    import sqlalchemy as sa
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    trials = models.TrialModel.__table__
    values = models.TrialValueModel.__table__
    query = (
        sa.select(trials.c.trial_id)
        .join(values, values.c.trial_id == trials.c.trial_id)
        .where(trials.c.study_id == study_id, trials.c.state == TrialState.COMPLETE,
               values.c.objective == 0, values.c.value.is_not(None))
        .order_by(values.c.value.desc() if maximize else values.c.value.asc(), trials.c.number)
        .limit(top)
    )  # fmt: skip
    with rdb.engine.connect() as connection:
        return list(connection.execute(query).scalars().all())
