"""The registry is filled per kind on first use: a benchmark lookup calls only the benchmark hooks (and imports no
vision tower's libraries); iterating it calls every hook. Structural checks only, no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

from medzoo.core.errors import PluginError
from medzoo.core.plugin_system.hookspecs import hookimpl
from medzoo.core.plugin_system.manager import components, plugin_system, register_plugin, unregister_plugin
from medzoo.core.plugin_system.registry import KINDS, ComponentRegistry
from medzoo.plugins.connectors.linear import LinearConnector

HEAVY = ("timm", "open_clip", "transformers", "torch", "httpx")

PROBE = """
import json, runpy, sys
heavy = json.loads(sys.argv[1])
loaded = lambda: sorted(name for name in heavy if name in sys.modules)
from medzoo.core.plugin_system.manager import components
components().get("benchmark", "synth-vqa-rad").factory(root="data/synth")
after_lookup = loaded()
sys.argv = ["medzoo", "eval", sys.argv[2], "--benchmark", "synth-vqa-rad", "-d", sys.argv[3]]
try:
    runpy.run_module("medzoo.app.cli", run_name="__main__")
    code = 0
except SystemExit as done:
    code = done.code
print(json.dumps({"lookup": after_lookup, "eval": loaded(), "code": code}))
"""


def test_a_benchmark_lookup_and_a_missing_option_error_import_no_heavy_library(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), str(tmp_path / "model"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=SUBPROCESS_HANG_S, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"lookup": [], "eval": [], "code": 2}
    assert "set the option root=DIR" in result.stderr


def test_iterating_the_registry_lists_every_kind():
    assert {entry.kind for entry in components()} == set(KINDS)


class Recorder:
    """An inline plugin recording which of its hooks were called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def register_connectors(self, register) -> None:
        self.calls.append("connector")
        register("lazy-linear", LinearConnector)

    @hookimpl
    def register_benchmarks(self, register) -> None:
        self.calls.append("benchmark")
        raise ImportError("needs libbench")

    @hookimpl
    def register_contenders(self, register) -> None:
        self.calls.append("contender")
        register("lazy-echo", lambda source: source)


@pytest.fixture
def recorder():
    plugin = Recorder()
    register_plugin(plugin, name="recorder")
    yield plugin
    unregister_plugin(plugin)


def test_only_the_kinds_read_are_collected_once_each(recorder):
    assert components().get("connector", "lazy-linear").provider == "recorder"
    components().names("connector")
    assert recorder.calls == ["connector"]
    assert [failure.plugin for failure in plugin_system().failures] == []  # the benchmark hook has not run
    list(components())
    assert recorder.calls == ["connector", "benchmark", "contender"]


def test_a_contender_lookup_calls_only_the_contender_hooks(recorder):
    from medzoo.core.evaluation.contenders import get_contender

    assert get_contender("lazy-echo").provider == "recorder"
    get_contender("lazy-echo")
    assert recorder.calls == ["contender"]


def test_a_failed_hook_is_noted_on_unknown_names_of_its_own_kind(recorder):
    with pytest.raises(PluginError, match=r"unknown benchmark 'nope'.*recorder \(in-process\): "
                                          r"register_benchmarks: ImportError: needs libbench"):
        components().get("benchmark", "nope")
    [failure] = plugin_system().failures
    assert failure.plugin == "recorder"
    with pytest.raises(PluginError) as caught:
        components().get("connector", "nope")
    assert "libbench" not in str(caught.value)


def test_concurrent_readers_of_a_kind_call_its_hooks_once():
    entered, release = threading.Event(), threading.Event()
    calls = []

    class Slow:
        @hookimpl
        def register_connectors(self, register) -> None:
            calls.append(threading.current_thread().name)
            entered.set()
            release.wait(SUBPROCESS_HANG_S)
            register("slow-linear", LinearConnector)

    plugin = Slow()
    register_plugin(plugin, name="slow")
    seen: dict[str, list[str]] = {}

    def read(label: str) -> None:
        seen[label] = components().names("connector")

    try:
        first = threading.Thread(target=read, args=("first",))
        first.start()
        assert entered.wait(SUBPROCESS_HANG_S)
        second = threading.Thread(target=read, args=("second",))
        second.start()
        release.set()
        first.join(SUBPROCESS_HANG_S)
        second.join(SUBPROCESS_HANG_S)
    finally:
        release.set()
        unregister_plugin(plugin)
    assert len(calls) == 1
    assert "slow-linear" in seen["first"] and "slow-linear" in seen["second"]


def test_a_hook_reading_its_own_kind_is_a_recorded_hook_failure():
    class Reentrant:
        @hookimpl
        def register_connectors(self, register) -> None:
            components().names("connector")

    plugin = Reentrant()
    register_plugin(plugin, name="reentrant")
    try:
        assert "linear" in components().names("connector")
        [failure] = plugin_system().failures
    finally:
        unregister_plugin(plugin)
    assert failure.plugin == "reentrant"
    assert failure.error.startswith("register_connectors: PluginError: a connector registration read the connector "
                                    "components while they were being registered")


def test_a_loader_that_raises_leaves_its_kind_unloaded_and_tries_again():
    attempts = []

    def loader(registry: ComponentRegistry, kind: str) -> str:
        attempts.append(kind)
        registry.add(kind, "half", LinearConnector, "p")
        if len(attempts) == 1:
            raise PluginError("first attempt fails")
        return "a note"

    registry = ComponentRegistry(loader=loader)
    with pytest.raises(PluginError, match="first attempt fails"):
        registry.names("connector")
    assert registry.names("connector") == ["half"]
    assert attempts == ["connector", "connector"]
    with pytest.raises(PluginError, match="unknown connector 'x'.*; a note$"):
        registry.get("connector", "x")
