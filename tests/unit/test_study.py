"""A study in its storage: created or loaded and checked, loaded by name, counted and ranked
under one rule; and the package's shape (no import cycle, no TensorFlow to read a study)."""

from __future__ import annotations

import ast
from pathlib import Path

import optuna
import pytest

import autotune
from autotune import study as study_module
from autotune.errors import NoCompleteTrialError, StudyMismatchError, StudyNotFoundError
from autotune.spec import from_dict

from conftest import tiny_raw

State = optuna.trial.TrialState
PACKAGE = Path(autotune.__file__).parent


def finished_trials(study: optuna.Study, values: list[float | None]) -> None:
    """One trial per value: COMPLETE with it, or PRUNED for None."""
    for value in values:
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        if value is None:
            study.tell(trial, state=State.PRUNED)
        else:
            study.tell(trial, value)


def test_open_study_stores_the_spec_and_its_metric_name(sqlite_url: str):
    spec = from_dict(tiny_raw())
    study = study_module.open_study(spec, sqlite_url)
    assert study.metric_names == ["val_accuracy"]
    assert study_module.stored_spec(study).fingerprint() == spec.fingerprint()
    again = study_module.load_study("tiny", sqlite_url)
    assert study_module.stored_spec(again).to_dict() == spec.to_dict()


def test_a_searched_study_refuses_another_objective_and_names_what_changed(sqlite_url: str):
    study = study_module.open_study(from_dict(tiny_raw()), sqlite_url)
    finished_trials(study, [0.5])
    changed = from_dict(tiny_raw(max_epochs=7, space={"units": 8}), source="tiny.toml")
    with pytest.raises(
        StudyMismatchError,
        match=r"was searched with another max_epochs, space; its trials cannot be mixed",
    ):
        study_module.open_study(changed, sqlite_url)
    # the budget, sampler and pruner may change
    study_module.open_study(
        from_dict(tiny_raw(n_trials=9, sampler="random", pruner="none")), sqlite_url
    )


def test_a_study_not_made_by_autotune_is_refused(sqlite_url: str):
    other = optuna.create_study(study_name="tiny", storage=sqlite_url)
    finished_trials(other, [0.1])
    with pytest.raises(StudyMismatchError, match=r"Study 'tiny' in .* was not made by autotune"):
        study_module.open_study(from_dict(tiny_raw()), sqlite_url)
    with pytest.raises(StudyMismatchError, match=r"holds no autotune study file"):
        study_module.stored_spec(other)


def test_load_study_names_what_the_storage_holds(sqlite_url: str, workdir: Path):
    with pytest.raises(StudyNotFoundError, match=r"No storage at .*studies.db yet"):
        study_module.load_study("tiny", sqlite_url)
    assert not (workdir / "studies.db").exists()  # nothing was created
    study_module.open_study(from_dict(tiny_raw()), sqlite_url)
    with pytest.raises(
        StudyNotFoundError,
        match=r"No study 'nope' in .*; it holds: tiny\. Create it with `autotune run --study nope`",
    ):
        study_module.load_study("nope", sqlite_url)
    # a study file stands for the study it names
    path = workdir / "tiny.toml"
    path.write_text('name = "tiny"\n[data]\nsource = "circles"\n')
    assert autotune.load_study(str(path), sqlite_url).study_name == "tiny"


@pytest.mark.parametrize("where", ["memory", "database"])
def test_counts_leave_surplus_trials_out_of_every_figure(where: str, tmp_path: Path):
    # On a database the counts are one counting query; in memory, the trials themselves.
    storage = f"sqlite:///{tmp_path / 'counts.db'}" if where == "database" else None
    study = optuna.create_study(direction="maximize", storage=storage)
    finished_trials(study, [0.3, None, 0.7])
    surplus = study.ask()
    surplus.set_user_attr("stop_reason", study_module.SURPLUS)
    study.tell(surplus, state=State.FAIL)
    study.tell(study.ask(), state=State.FAIL)
    study.ask()  # running
    study.enqueue_trial({"x": 0.5})
    tally = study_module.counts(study)
    assert (tally.complete, tally.pruned, tally.failed, tally.running, tally.waiting) == (
        2,
        1,
        1,
        1,
        1,
    )
    assert tally.finished == 3
    assert str(tally) == "2 complete, 1 failed, 1 pruned, 1 running, 1 waiting"


@pytest.mark.parametrize("direction, best", [("maximize", [2, 0, 3]), ("minimize", [1, 0, 3])])
def test_ranking_follows_the_direction_and_keeps_the_earlier_of_equal_trials(direction, best):
    study = optuna.create_study(direction=direction)
    finished_trials(study, [0.5, 0.1, 0.9, 0.5, None])
    assert [t.number for t in study_module.ranked(study, 3)] == best
    assert study_module.best_trial(study).number == best[0]


def test_a_study_without_a_complete_trial_has_no_best():
    study = optuna.create_study(study_name="empty")
    finished_trials(study, [None])
    assert study_module.best_trial(study) is None
    with pytest.raises(NoCompleteTrialError, match=r"Study 'empty' has no complete trial yet"):
        study_module.require_best(study)


def test_summaries_list_every_study_with_its_counts_and_best(sqlite_url: str):
    assert study_module.summaries(sqlite_url) == []
    study = study_module.open_study(from_dict(tiny_raw(n_trials=4)), sqlite_url)
    finished_trials(study, [0.2, 0.6, None])
    ((name, tally, target, best, direction),) = study_module.summaries(sqlite_url)
    assert (name, tally.finished, target, best, direction) == ("tiny", 3, 4, 0.6, "maximize")


def _imports(path: Path) -> set[str]:
    """The autotune modules that a module imports, at its top or inside its functions."""
    tree = ast.parse(path.read_text())
    typing_only = {  # imports under `if TYPE_CHECKING:` never run
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autotune"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("autotune"))
    return found


def test_no_module_of_the_package_imports_itself_back_through_others():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    # the package's __init__ re-exports; what counts is each module's own dependencies
    graph = {
        name: {m for m in _imports(path) if m in modules and m not in ("autotune", name)}
        for name, path in modules.items()
        if name != "autotune"
    }

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return path + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in map(cycle_from, sorted(graph)) if c]
    assert not cycles, f"import cycles: {cycles}"


def test_only_the_trial_seam_calls_fit():
    def keras_fits(path: Path) -> int:  # calls of .fit(..., epochs=...)
        return sum(
            1
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "fit"
            and any(k.arg == "epochs" for k in node.keywords)
        )

    callers = {p.name: n for p in PACKAGE.rglob("*.py") if (n := keras_fits(p))}
    assert callers == {"trial.py": 1}


def test_opening_a_study_adds_the_index_that_counting_reads_once(sqlite_url: str):
    import sqlalchemy as sa

    spec = from_dict(tiny_raw())
    study = study_module.open_study(spec, sqlite_url)
    study_module.open_study(spec, sqlite_url)  # a second worker: no error, one index
    engine = sa.create_engine(sqlite_url)
    indexes = [i for i in sa.inspect(engine).get_indexes("trials")]
    ours = [i for i in indexes if i["name"] == study_module.STATE_INDEX]
    assert len(ours) == 1 and ours[0]["column_names"] == ["study_id", "state", "number"]
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT state, count(*) FROM trials WHERE study_id = ?"
            " GROUP BY state",
            (study._study_id,),
        ).all()
    assert "COVERING INDEX " + study_module.STATE_INDEX in str(plan)


def test_deleting_a_study_removes_its_rows_from_every_table_and_leaves_others(sqlite_url: str):
    import sqlalchemy as sa

    kept = optuna.create_study(study_name="kept", storage=sqlite_url)
    gone = optuna.create_study(study_name="gone", storage=sqlite_url)
    for study in (kept, gone):
        study.set_user_attr("a", 1)
        study._storage.set_study_system_attr(study._study_id, "b", 2)
        for _ in range(3):
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            trial.report(0.5, 0)
            trial.set_user_attr("c", 3)
            trial.storage.set_trial_system_attr(trial._trial_id, "d", 4)
            study.tell(trial, 0.5)
    before = {t.number: t.params for t in kept.trials}
    study_module.delete_study(study_module.load_study("gone", sqlite_url))
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        tables = [n for n in sa.inspect(engine).get_table_names() if n not in ("version_info",
                  "alembic_version")]  # fmt: skip
        for table in tables:
            columns = {c["name"] for c in sa.inspect(engine).get_columns(table)}
            if "study_id" in columns:
                ids = {r[0] for r in connection.exec_driver_sql(f"SELECT study_id FROM {table}")}
                assert gone._study_id not in ids, table
        orphans = connection.exec_driver_sql(
            "SELECT count(*) FROM trial_params WHERE trial_id NOT IN (SELECT trial_id FROM trials)"
        ).scalar_one()
        assert orphans == 0
    assert optuna.get_all_study_names(sqlite_url) == ["kept"]
    again = optuna.load_study(study_name="kept", storage=sqlite_url)
    assert {t.number: t.params for t in again.trials} == before
    assert again.user_attrs == {"a": 1} and len(again.trials[0].intermediate_values) == 1
