"""GPU placement, without a GPU: which GPUs each local worker sees, and the mistakes refused."""

from __future__ import annotations

import os
import sys

import pytest

from autotune import devices
from autotune.errors import AutotuneError


def test_the_forms_of_gpus():
    assert devices.parse("auto") == "auto"
    assert devices.parse(" None ") == "none"
    assert devices.parse("0, 2") == ["0", "2"]
    for bad in ("", "gpu0", "0,0", "-1", "0,,1"):
        with pytest.raises(AutotuneError, match="is not auto, none or a list of distinct GPU"):
            devices.parse(bad)


def test_workers_take_the_gpus_round_robin_and_at_most_their_share_each():
    assert devices.placement(2, ["0", "1"], 1) == ["0", "1"]
    assert devices.placement(3, ["0", "1"], 2) == ["0", "1", "0"]
    assert devices.placement(4, ["2", "5"], 2) == ["2", "5", "2", "5"]
    assert devices.placement(3, ["0"], None) == ["0", "0", "0"]  # no cap: shared evenly
    with pytest.raises(AutotuneError) as caught:
        devices.placement(3, ["0", "1"], 1)
    assert str(caught.value) == (
        "--workers 3 needs 3 GPU places, but 2 GPU(s) (0, 1) with --trials-per-gpu 1 give 2."
        " Use fewer workers, raise --trials-per-gpu, or --gpus none for the CPU."
    )


def test_auto_uses_the_gpus_there_are_and_the_cpu_without_one():
    assert devices.plan("auto", 2, 1, ["0", "1"]) == ["0", "1"]
    assert devices.plan("auto", 2, 1, []) == [None, None]  # left as is: the CPU
    assert devices.plan("none", 3, 1, ["0"]) == ["", "", ""]  # every GPU hidden
    assert devices.plan(["1"], 2, 2, ["0", "1"]) == ["1", "1"]


def test_a_gpu_that_is_not_there_is_refused_naming_what_is():
    with pytest.raises(AutotuneError) as caught:
        devices.plan(["0", "3"], 2, 1, ["0", "1"])
    assert str(caught.value) == (
        "--gpus 0,3: GPU 3 is not there; TensorFlow sees GPUs 0, 1 on this machine. Use --gpus"
        " auto (the GPUs there are, else the CPU) or --gpus none."
    )
    with pytest.raises(AutotuneError, match="GPU 0 is not there; TensorFlow sees no GPU"):
        devices.plan(["0"], 1, 1, [])


def test_one_worker_trains_here_so_its_gpus_are_set_before_tensorflow_starts(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv(devices.ENV, raising=False)
    # As in a fresh process (other tests of the same run may have started TensorFlow).
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    devices.before_tensorflow("auto", 1)
    assert devices.ENV not in os.environ
    devices.before_tensorflow(["1"], 2)  # workers get theirs when they start
    assert devices.ENV not in os.environ
    devices.before_tensorflow(["1", "0"], 1)
    assert os.environ[devices.ENV] == "1,0"
    devices.before_tensorflow("none", 1)
    assert os.environ[devices.ENV] == ""


def test_tensorflow_started_already_on_other_gpus_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(devices.ENV, raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    with pytest.raises(AutotuneError, match="TensorFlow has started in this process already"):
        devices.before_tensorflow(["1"], 1)
    assert devices.ENV not in os.environ
