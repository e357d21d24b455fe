import optuna
import pytest

from autotune.errors import StudySpecError
from autotune.space import build_space, parse_param, rejects, sample, space_hash

DEFAULT = {
    "lr": {"low": 1e-4, "high": 0.3, "log": True},
    "units": {"low": 4, "high": 128, "log": True},
    "optimizer": {"choices": ["sgd", "momentum", "adam"]},
    "momentum": {"low": 0.5, "high": 0.99, "when": {"optimizer": ["momentum"]}},
}


def test_kinds_are_inferred_from_the_bounds():
    space = build_space(DEFAULT)
    assert [space[n].kind for n in ("lr", "units", "optimizer", "momentum")] == [
        "float",
        "int",
        "categorical",
        "float",
    ]


def test_override_narrows_and_keeps_what_it_leaves_out():
    space = build_space(DEFAULT, {"lr": {"high": 0.01}, "momentum": {"low": 0.9}})
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (1e-4, 0.01, True)
    # the condition is inherited, so momentum still exists only for the momentum optimizer
    assert space["momentum"].when == (("optimizer", ("momentum",)),)


def test_an_int_parameter_narrowed_with_zero_stays_float_when_it_was_float():
    space = build_space({"dropout": {"low": 0.0, "high": 0.5}}, {"dropout": {"low": 0, "high": 1}})
    assert space["dropout"].kind == "float"


def test_a_scalar_fixes_a_parameter_and_a_list_gives_choices():
    space = build_space(DEFAULT, {"units": 32, "optimizer": ["adam", "sgd"]})
    assert space["units"].choices == (32,)
    assert space["optimizer"].choices == ("adam", "sgd")


def test_conditional_parameter_exists_only_when_its_parent_asks():
    space = build_space(DEFAULT)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(30):
        trial = study.ask()
        params = sample(space, trial)
        seen.append(params)
        assert ("momentum" in params) == (params["optimizer"] == "momentum")
        study.tell(trial, 0.0)
    assert any("momentum" in p for p in seen) and any("momentum" not in p for p in seen)


def test_parents_are_sampled_before_children_whatever_the_order_written():
    space = build_space({"m": {"low": 0.1, "high": 0.2, "when": {"o": ["a"]}}, "o": ["a", "b"]})
    assert list(space) == ["o", "m"]


def test_hash_is_stable_and_changes_with_the_space():
    assert space_hash(build_space(DEFAULT)) == space_hash(build_space(DEFAULT))
    assert space_hash(build_space(DEFAULT)) != space_hash(build_space(DEFAULT, {"units": 8}))


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"low": 1}, r"'x' needs both low and high"),
        ({"low": 0.3, "high": 0.1}, r"low must not exceed high, but got low=0.3, high=0.1"),
        ({"low": 0, "high": 1.0, "log": True}, r"a log scale needs low > 0"),
        ({"low": 1, "high": 9, "lg": True}, r"unknown key\(s\) lg; allowed: choices, high, log"),
        ({"choices": []}, r"choices must be a non-empty list"),
        ({"choices": [1, 1]}, r"choices repeat a value"),
        ({"low": 1, "high": 2, "log": True, "step": 1}, r"log and step cannot be used together"),
        ({"low": "a", "high": 2}, r"low must be a number, but got 'a'"),
    ],
)
def test_malformed_definitions_are_named(raw, message):
    with pytest.raises(StudySpecError, match=message):
        parse_param("x", raw)


def test_unknown_parameter_is_refused_with_the_known_ones():
    with pytest.raises(
        StudySpecError, match=r"unknown parameter 'unit'; this model family has: lr"
    ):
        build_space(DEFAULT, {"unit": 8})


def test_condition_on_unknown_parent_is_refused():
    with pytest.raises(StudySpecError, match=r"'m' depends on unknown parameter 'opt'"):
        build_space({"m": {"low": 0.1, "high": 0.2, "when": {"opt": ["a"]}}})


def test_rejects_names_what_the_space_cannot_hold():
    space = build_space(DEFAULT, {"units": {"high": 64}})
    ok = {"lr": 0.01, "units": 8, "optimizer": "adam"}
    assert rejects(space, ok) == []
    assert rejects(space, {**ok, "units": 100}) == ["units=100 is outside [4, 64] log"]
    assert rejects(space, {"lr": 0.01, "units": 8, "optimizer": "momentum"}) == [
        "momentum is missing"
    ]


def test_grid_needs_discrete_parameters():
    assert parse_param("u", {"low": 2, "high": 8, "step": 2}).grid() == [2, 4, 6, 8]
    with pytest.raises(StudySpecError, match="grid sampler needs a discrete space, but 'lr'"):
        parse_param("lr", {"low": 0.1, "high": 0.2}).grid()
