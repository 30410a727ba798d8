"""Resuming never unpickles code: training state is tensors and plain values, read with ``weights_only=True``."""

from __future__ import annotations

import pathlib
import random

import numpy as np
import pytest
import torch

from medzoo.core.errors import TrainingError
from medzoo.core.training.checkpoint import load_training_state, rng_state, set_rng_state


def test_random_state_survives_a_safe_round_trip(tmp_path):
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    torch.save({"rng": rng_state()}, tmp_path / "state.pt")
    expected = (random.random(), float(np.random.rand()), torch.rand(3).tolist())
    set_rng_state(load_training_state(tmp_path / "state.pt")["rng"])
    assert (random.random(), float(np.random.rand()), torch.rand(3).tolist()) == expected


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_state_file_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"rng": _Payload(marker)}, tmp_path / "state.pt")
    with pytest.raises(TrainingError) as caught:
        load_training_state(tmp_path / "state.pt")
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "state.pt") in message and "safely" in message
    assert not marker.exists()


def test_a_truncated_state_file_is_a_one_line_error(tmp_path):
    torch.save({"rng": rng_state()}, tmp_path / "state.pt")
    data = (tmp_path / "state.pt").read_bytes()
    (tmp_path / "state.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(TrainingError) as caught:
        load_training_state(tmp_path / "state.pt")
    assert "\n" not in str(caught.value)
