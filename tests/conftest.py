"""Shared fixtures: the tiny model the tests build and train, a trained copy of it, and synthetic data sets
(the tiny model itself is defined once, in ``medzoo.testing``)."""

from __future__ import annotations

import contextlib
import copy
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from support.hang_guard import describe_timeout

from medzoo.testing import TINY_MODEL, ColourSquares, train_colour_model
from medzoo.testing import single_thread as one_thread


@pytest.fixture(autouse=True)
def one_torch_thread() -> None:
    """Every test starts with torch on one intra-op thread. The tiny models' kernels are too small to gain from
    more, and beside other jobs on a 2-core machine a second OpenMP thread that gets descheduled stalls every
    kernel (tests/test_model_composition.py: 237 s with torch's default 2 threads, 28 s with one, measured back
    to back on a loaded machine). Thread-count behaviour itself is tested with its own fixtures
    (tests/test_reproducible_runs.py, tests/test_cpu_threads.py); subprocesses keep their own settings."""
    torch.set_num_threads(1)


@pytest.fixture
def tiny_model_spec() -> dict:
    """The tiny model's recipe section (a fresh copy: tests may edit it)."""
    return copy.deepcopy(TINY_MODEL)


@pytest.fixture(scope="session")
def single_thread() -> Callable[[], contextlib.AbstractContextManager]:
    """A context manager running torch on one thread."""
    return one_thread


@pytest.fixture(scope="session")
def squares() -> ColourSquares:
    """The colour-square task: its question, colours and images."""
    return ColourSquares()


@pytest.fixture(scope="session")
def trained_tiny_model(tmp_path_factory, squares) -> Path:
    """The colour-square model, trained once per test session."""
    return train_colour_model(tmp_path_factory.mktemp("trained-tiny-model") / "model", squares)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Callable[..., Path]:
    """``synthetic_data(seed=.., train=.., val=.., test=..)``: the built-in synthetic set, written once per
    session for each distinct request (treat it as read-only)."""
    from medzoo.app.data_synth.generate import DEFAULT_SEED, synthesize

    made: dict[tuple, Path] = {}

    def make(seed: int = DEFAULT_SEED, **sizes: int) -> Path:
        key = (seed, tuple(sorted(sizes.items())))
        if key not in made:
            root = tmp_path_factory.mktemp(f"synth-{seed}")
            synthesize(root, seed=seed, sizes=sizes or None)
            made[key] = root
        return made[key]

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A subprocess that ran past the hang guard fails the test saying which command hung and what it wrote."""
    try:
        return (yield)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(describe_timeout(expired), pytrace=False)
