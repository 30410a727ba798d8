"""The plugin system: inline plugins, name rules, loud hook errors, lazy loading, entry points and MEDZOO_PLUGINS.

Installed plugins are simulated with real ``*.dist-info`` folders on a temporary ``sys.path`` entry, so
``importlib.metadata`` finds them exactly as it finds a pip-installed package.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

from medzoo.core.errors import PluginError
from medzoo.core.plugin_system import manager as plugin_manager
from medzoo.core.plugin_system.hookspecs import hookimpl
from medzoo.core.plugin_system.manager import (
    components,
    plugin_system,
    register_plugin,
    reset_plugins,
    unregister_plugin,
)
from medzoo.plugins.connectors.linear import LinearConnector

FAKE_PREFIX = "medzoo_fake_"
CONNECTOR_PLUGIN = """
from medzoo.core.plugin_system.hookspecs import hookimpl
from medzoo.plugins.connectors.linear import LinearConnector


@hookimpl
def register_connectors(register):
    register({name!r}, LinearConnector)
"""


class ConnectorPlugin:
    """An inline plugin registering one connector under ``name``."""

    def __init__(self, name: str, factory: object = LinearConnector) -> None:
        self.name = name
        self.factory = factory

    @hookimpl
    def register_connectors(self, register) -> None:
        register(self.name, self.factory)


@pytest.fixture
def inline():
    """Register inline plugins for one test; each is unregistered in teardown."""
    registered: list[object] = []

    def add(plugin: object, name: str) -> object:
        register_plugin(plugin, name=name)
        registered.append(plugin)
        return plugin

    yield add
    for plugin in registered:
        if plugin_system().manager.is_registered(plugin):
            unregister_plugin(plugin)


@pytest.fixture
def site(tmp_path, monkeypatch) -> Iterator[Path]:
    """A fresh plugin system over a temporary site directory; everything is forgotten in teardown."""
    monkeypatch.delenv(plugin_manager.RESTRICT_ENV_VAR, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugins()
    yield tmp_path
    reset_plugins()  # lazy: the next use reloads after monkeypatch has restored sys.path
    for module in [name for name in sys.modules if name.startswith(FAKE_PREFIX)]:
        del sys.modules[module]


def install(root: Path, distribution: str, entry_name: str, source: str, module: str | None = None) -> str:
    """Write a module plus a ``<dist>-0.1.dist-info`` declaring it in the ``medzoo`` entry-point group."""
    module = module or FAKE_PREFIX + entry_name.replace("-", "_")
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{distribution.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[medzoo]\n{entry_name} = {module}\n")
    return module


def install_connector(root: Path, entry_name: str, connector: str) -> str:
    return install(root, f"medzoo-{entry_name}", entry_name, CONNECTOR_PLUGIN.format(name=connector))


# --- inline plugins ---------------------------------------------------------------------------------------------


def test_inline_plugin_registers_and_unregisters(inline):
    plugin = inline(ConnectorPlugin("inline-linear"), "inline-test")
    registration = components().get("connector", "inline-linear")
    assert registration.factory is LinearConnector
    assert registration.provider == "inline-test"
    unregister_plugin(plugin)
    with pytest.raises(PluginError, match="unknown connector 'inline-linear'"):
        components().get("connector", "inline-linear")


def test_duplicate_component_is_rejected_naming_both_providers(inline):
    inline(ConnectorPlugin("linear"), "copycat")
    with pytest.raises(PluginError) as caught:
        components().names("connector")  # reading the connectors calls their hooks
    assert str(caught.value) == "duplicate connector 'linear': registered by medzoo.connectors and by copycat"


def test_registry_recovers_once_the_duplicate_is_unregistered(inline):
    plugin = inline(ConnectorPlugin("linear"), "copycat")
    with pytest.raises(PluginError):
        components().names("connector")  # reading the connectors calls their hooks
    unregister_plugin(plugin)
    assert components().get("connector", "linear").provider == "medzoo.connectors"


@pytest.mark.parametrize("name", ["Linear", "my connector", "", "-lead", "_lead", "x/y", "ünï", 7])
def test_invalid_names_are_rejected(inline, name):
    inline(ConnectorPlugin(name), "bad-names")
    with pytest.raises(PluginError, match=r"bad-names: invalid connector name"):
        components().names("connector")  # reading the connectors calls their hooks


def test_a_registration_without_factory_is_rejected(inline):
    inline(ConnectorPlugin("nothing", factory=None), "no-factory")
    with pytest.raises(PluginError, match="no-factory: connector 'nothing' registered without a factory"):
        components().names("connector")  # reading the connectors calls their hooks


def test_misspelt_hook_fails_loudly_and_leaves_nothing_registered():
    class Misspelt:
        @hookimpl
        def register_vision_encoder(self, register) -> None:  # the hook is register_vision_encoders
            register("never", LinearConnector)

    plugin = Misspelt()
    with pytest.raises(PluginError) as caught:
        register_plugin(plugin, name="misspelt")
    message = str(caught.value)
    assert message.startswith("plugin misspelt: unknown hook 'register_vision_encoder'")
    assert 'did you mean "register_vision_encoders"' in message and "\n" not in message
    assert not plugin_system().manager.is_registered(plugin)
    assert "clip" in components().names("vision_encoder")


def test_hook_with_wrong_arguments_fails_loudly_in_one_line():
    class WrongArguments:
        @hookimpl
        def register_connectors(self, callback) -> None:
            callback("never", LinearConnector)

    with pytest.raises(PluginError, match=r"plugin 'wrong-args': .*\{'callback'\}") as caught:
        register_plugin(WrongArguments(), name="wrong-args")
    assert "\n" not in str(caught.value)
    assert not plugin_system().manager.has_plugin("wrong-args")


# --- lazy, once-only loading ------------------------------------------------------------------------------------


def test_importing_the_core_loads_no_plugin():
    code = (
        "import sys, medzoo.core.plugin_system.manager, medzoo.core.model.build, medzoo.core.model.multimodal, medzoo.core.recipes.loading\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('medzoo.plugins.'))\n"
        "assert not loaded, loaded\n"
        "from medzoo.core.plugin_system.manager import components\n"
        "components()\n"
        "assert 'medzoo.plugins.vision.registration' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=SUBPROCESS_HANG_S)
    assert result.returncode == 0, result.stderr


def test_entry_points_load_lazily_and_once(site, monkeypatch):
    module = install_connector(site, "alpha", "alpha-conn")
    calls = []
    real = importlib.metadata.entry_points

    def counting(**selection):
        calls.append(selection)
        return real(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    assert module not in sys.modules and calls == []
    system = plugin_system()
    assert module in sys.modules and calls == [{"group": "medzoo"}]
    assert components().get("connector", "alpha-conn").provider == "alpha (medzoo-alpha)"
    assert plugin_system() is system and components() is components()
    assert calls == [{"group": "medzoo"}]


# --- installed plugins: MEDZOO_PLUGINS, failures, duplicates ----------------------------------------------------


def test_medzoo_plugins_restricts_installed_plugins(site, monkeypatch):
    alpha = install_connector(site, "alpha", "alpha-conn")
    beta = install_connector(site, "beta", "beta-conn")
    monkeypatch.setenv("MEDZOO_PLUGINS", "alpha")
    names = components().names("connector")
    assert "alpha-conn" in names and "beta-conn" not in names
    assert beta not in sys.modules and alpha in sys.modules
    assert "linear" in names  # built-ins always load

    reset_plugins()
    monkeypatch.setenv("MEDZOO_PLUGINS", " alpha , beta ")
    assert {"alpha-conn", "beta-conn"} <= set(components().names("connector"))

    reset_plugins()
    monkeypatch.setenv("MEDZOO_PLUGINS", "")
    names = components().names("connector")
    assert "alpha-conn" not in names and "beta-conn" not in names and "linear" in names
    assert plugin_system().failures == []


def test_medzoo_plugins_naming_a_missing_plugin_is_reported(site, monkeypatch):
    install_connector(site, "alpha", "alpha-conn")
    monkeypatch.setenv("MEDZOO_PLUGINS", "alpha,alfa")
    assert "alpha-conn" in components().names("connector")
    [failure] = plugin_system().failures
    assert (failure.plugin, failure.distribution) == ("alfa", "not installed")


def test_broken_plugin_is_reported_with_its_distribution_and_spares_the_others(site, caplog):
    install_connector(site, "alpha", "alpha-conn")
    install(site, "medzoo-broken", "broken", "raise ImportError('needs libfoo.so')\n")
    assert "alpha-conn" in components().names("connector")
    assert "clip" in components().names("vision_encoder")
    [failure] = plugin_system().failures
    assert failure == plugin_manager.PluginFailure("broken", "medzoo-broken", "ImportError: needs libfoo.so")
    assert "'broken' from medzoo-broken failed to load" in caplog.text
    with pytest.raises(
        PluginError, match=r"unknown connector 'broken-conn'.*broken \(medzoo-broken\): ImportError"
    ):
        components().get("connector", "broken-conn")


def test_hook_whose_lazy_import_fails_is_reported_and_registers_nothing(site):
    install_connector(site, "alpha", "alpha-conn")
    source = CONNECTOR_PLUGIN.format(name="lazy-conn").replace(
        "    register(",
        "    register('lazy-early', LinearConnector)\n    import medzoo_missing_dependency  # noqa\n    register(",
    )
    install(site, "medzoo-lazy", "lazy", source)
    names = components().names("connector")
    assert "alpha-conn" in names and "lazy-early" not in names and "lazy-conn" not in names
    [failure] = plugin_system().failures
    assert failure == plugin_manager.PluginFailure(
        "lazy",
        "medzoo-lazy",
        "register_connectors: ModuleNotFoundError: No module named 'medzoo_missing_dependency'",
    )


def test_plugin_failing_inside_its_hook_names_its_distribution(site):
    install(site, "medzoo-crash", "crash", CONNECTOR_PLUGIN.format(name="Bad Name"))
    with pytest.raises(PluginError, match=r"^crash \(medzoo-crash\): invalid connector name 'Bad Name'"):
        components().names("connector")  # reading the connectors calls their hooks


def test_installed_plugin_with_misspelt_hook_fails_loudly(site):
    install(
        site,
        "medzoo-typo",
        "typo",
        "from medzoo.core.plugin_system.hookspecs import hookimpl\n\n@hookimpl\ndef register_conectors(register):\n    pass\n",
    )
    with pytest.raises(
        PluginError,
        match=r"^plugin typo \(medzoo-typo\): unknown hook 'register_conectors' "
        r"\(did you mean \"register_connectors\"\?\)",
    ):
        components()  # loading the plugins checks their hooks


def test_duplicate_across_installed_and_builtin_names_the_distribution(site):
    install_connector(site, "alpha", "linear")
    with pytest.raises(PluginError) as caught:
        components().names("connector")  # reading the connectors calls their hooks
    assert str(caught.value) == (
        "duplicate connector 'linear': registered by medzoo.connectors and by alpha (medzoo-alpha)"
    )


def test_same_distribution_twice_on_the_path_loads_once(site, tmp_path_factory, monkeypatch):
    install_connector(site, "alpha", "alpha-conn")
    copy = tmp_path_factory.mktemp("second-site")
    install_connector(copy, "alpha", "alpha-conn")
    monkeypatch.syspath_prepend(str(copy))
    assert "alpha-conn" in components().names("connector")
    assert plugin_system().failures == []


def test_two_distributions_claiming_one_plugin_name_is_reported(site, tmp_path_factory, monkeypatch):
    install(site, "medzoo-first", "shared", CONNECTOR_PLUGIN.format(name="first-conn"), FAKE_PREFIX + "first")
    other = tmp_path_factory.mktemp("other-site")
    install(
        other, "medzoo-second", "shared", CONNECTOR_PLUGIN.format(name="second-conn"), FAKE_PREFIX + "second"
    )
    monkeypatch.syspath_prepend(str(other))  # found first
    names = components().names("connector")
    assert "second-conn" in names and "first-conn" not in names
    [failure] = plugin_system().failures
    assert failure == plugin_manager.PluginFailure(
        "shared", "medzoo-first", "plugin name already taken by medzoo-second"
    )


def test_a_checkout_used_without_installing_reads_its_builtins_from_pyproject(monkeypatch):
    """On a bare machine the checkout is put on PYTHONPATH (benchmarks/gpu_bench.sh): no medzoo metadata."""
    monkeypatch.setattr(plugin_manager, "installed_entry_points", lambda: [])
    plugin_manager.reset_plugins()
    try:
        registry = plugin_manager.components()
        assert {"clip", "biomedclip"} <= set(registry.names("vision_encoder"))
        assert all(entry.provider.startswith("medzoo.") for entry in registry)
    finally:
        monkeypatch.undo()
        plugin_manager.reset_plugins()
