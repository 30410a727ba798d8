"""Loading plugins: medzoo's own and installed packages' (both entry-point group ``medzoo``), lazily and once.

``MEDZOO_PLUGINS=a,b`` restricts which installed (entry-point) plugins load; built-ins always load.
A plugin that fails to import is recorded with its distribution name and does not stop the others;
a plugin whose hooks are malformed (a misspelt hook name, wrong arguments) fails loudly with a ``PluginError``.
The registry is filled per kind on first use: looking up a benchmark calls only the benchmark hooks (so it
imports no vision tower's libraries); iterating the registry calls them all.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from medzoo.core.errors import PluginError, did_you_mean
from medzoo.core.plugin_system import hookspecs
from medzoo.core.plugin_system.registry import HOOK_KINDS, KINDS, ComponentRegistry

ENTRY_POINT_GROUP = "medzoo"
BUILTIN_DISTRIBUTION = "medzoo"
RESTRICT_ENV_VAR = "MEDZOO_PLUGINS"
logger = logging.getLogger(__name__)
#: component kind -> its registration hook
HOOK_NAMES = {kind: hook for hook, kind in HOOK_KINDS.items()}


@dataclass(frozen=True)
class PluginFailure:
    """An installed plugin that could not be imported or registered."""

    plugin: str
    distribution: str
    error: str


class PluginSystem:
    """A pluggy manager plus the component registry its hooks fill."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        #: installed plugins that could not be imported
        self.load_failures: list[PluginFailure] = []
        #: plugin name -> distribution name, for entry-point plugins
        self.distributions: dict[str, str] = {}
        self._registry: ComponentRegistry | None = None
        #: kind -> the hooks that raised while the current registry filled that kind
        self._hook_failures: dict[str, list[PluginFailure]] = {}
        self._registry_lock = threading.Lock()

    @property
    def hook_failures(self) -> list[PluginFailure]:
        """Registration hooks that raised, for the kinds read so far (every kind once the registry is iterated)."""
        return [failure for kind in KINDS for failure in self._hook_failures.get(kind, [])]

    @property
    def failures(self) -> list[PluginFailure]:
        """Every plugin that failed (a kind's hook failures are known once that kind has been read)."""
        return [*self.load_failures, *self.hook_failures]

    def load_entry_points(self, allowed: set[str] | None) -> None:
        """Register every plugin of the entry-point group: medzoo's own (always, as ``medzoo.<name>``),
        then installed packages' (only those ``allowed`` names, when given)."""
        entry_points = installed_entry_points()
        builtins = [ep for ep in entry_points if _distribution_of(ep) == BUILTIN_DISTRIBUTION]
        for entry_point in builtins or source_checkout_builtins():
            self._register_builtin(entry_point)
        found: set[str] = set()
        for entry_point in entry_points:
            distribution = _distribution_of(entry_point)
            if distribution == BUILTIN_DISTRIBUTION:
                continue
            found.add(entry_point.name)
            if allowed is not None and entry_point.name not in allowed:
                continue
            self._register_installed(entry_point, distribution)
        for name in sorted((allowed or set()) - found):
            self._fail(
                name, "not installed", f"{RESTRICT_ENV_VAR} names it but no installed package provides it"
            )

    def _register_builtin(self, entry_point: importlib.metadata.EntryPoint) -> None:
        name = f"{BUILTIN_DISTRIBUTION}.{entry_point.name}"
        if not self.manager.has_plugin(name):  # the same distribution seen twice on sys.path is harmless
            self.manager.register(entry_point.load(), name=name)

    def _register_installed(self, entry_point: importlib.metadata.EntryPoint, distribution: str) -> None:
        if self.manager.has_plugin(entry_point.name):
            earlier = self.distributions.get(entry_point.name, BUILTIN_DISTRIBUTION)
            if earlier != distribution:  # the same distribution seen twice on sys.path is harmless
                self._fail(entry_point.name, distribution, f"plugin name already taken by {earlier}")
            return
        try:
            plugin = entry_point.load()
        except Exception as error:  # a plugin that cannot be imported must not take the others down
            self._fail(entry_point.name, distribution, f"{type(error).__name__}: {error}")
            return
        try:
            self.manager.register(plugin, name=entry_point.name)
        except pluggy.PluginValidationError as error:  # a hook with wrong arguments is a bug: fail loudly
            raise PluginError(f"plugin {entry_point.name} ({distribution}): {one_line(error)}") from None
        except ValueError as error:  # the same module under a second name
            self._fail(entry_point.name, distribution, str(error))
            return
        self.distributions[entry_point.name] = distribution

    def _fail(
        self, plugin: str, distribution: str, error: str, into: list[PluginFailure] | None = None
    ) -> None:
        failure = PluginFailure(plugin, distribution, one_line(error))
        (self.load_failures if into is None else into).append(failure)
        logger.warning("medzoo plugin %r from %s failed to load: %s", plugin, distribution, failure.error)

    def failure_note(self, hook_failures: list[PluginFailure] | None = None) -> str:
        """One line naming the plugins that failed to load and the hooks that failed (``hook_failures``, default
        all known): appended to unknown-component errors."""
        failures = [*self.load_failures, *(self.hook_failures if hook_failures is None else hook_failures)]
        if not failures:
            return ""
        listed = "; ".join(f"{f.plugin} ({f.distribution}): {f.error}" for f in failures)
        return f"plugins that failed to load: {listed}"

    def check(self) -> None:
        """Fail loudly on a hook implementation that matches no hook specification (e.g. a misspelt name)."""
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            known = self.hook_names(specified=True)
            unknown = [
                f"{name!r}{did_you_mean(name, known)}"
                for name in self.hook_names(specified=False)
                if any(
                    impl.plugin is error.plugin for impl in getattr(self.manager.hook, name).get_hookimpls()
                )
            ]
            raise PluginError(
                f"plugin {self.provider_name(error.plugin)}: unknown hook {', '.join(unknown)}; "
                f"expected one of {', '.join(known)} (leave the plugin out with {RESTRICT_ENV_VAR})"
            ) from None

    def hook_names(self, specified: bool) -> list[str]:
        """Names of the hooks with (or without) a specification."""
        hooks = self.manager.hook
        return sorted(
            name
            for name in vars(hooks)
            if not name.startswith("_") and getattr(hooks, name).has_spec() == specified
        )

    @property
    def registry(self) -> ComponentRegistry:
        """The component registry; each kind's hooks are called the first time that kind is read."""
        with self._registry_lock:
            if self._registry is None:
                failures: dict[str, list[PluginFailure]] = {}
                self._hook_failures = failures
                self._registry = ComponentRegistry(loader=functools.partial(self._collect, failures=failures))
            return self._registry

    def invalidate(self) -> None:
        """Forget the registry (a plugin came or went): the next read calls the hooks again."""
        with self._registry_lock:
            self._registry = None
            self._hook_failures = {}

    def _collect(self, registry: ComponentRegistry, kind: str, failures: dict[str, list[PluginFailure]]) -> str:
        """Call the registration hooks of ``kind`` into ``registry``, returning the note for its unknown-name
        errors. A hook that raises (e.g. its lazy import fails) is recorded in ``failures`` and its components are
        left out; a bad name or a duplicate raises ``PluginError``."""
        failures[kind] = []
        for provider, registered in self.call_registration_hook(HOOK_NAMES[kind], failures[kind]):
            for name, factory, info in registered:
                registry.add(kind, name, factory, provider, **info)
        return self.failure_note(failures[kind])

    def call_registration_hook(
        self, hook_name: str, failures: list[PluginFailure]
    ) -> list[tuple[str, list[tuple[Any, Any, dict[str, Any]]]]]:
        """Call every implementation of a ``register(name, factory, **info)`` hook in registration order (built-ins
        first): ``(provider, [(name, factory, info), ...])`` for each. One that raises (e.g. its lazy import fails)
        is recorded in ``failures`` and left out: a failing plugin must not take the others down."""
        calls = []
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            registered: list[tuple[Any, Any, dict[str, Any]]] = []

            def register(name, factory, _registered=registered, **info):
                _registered.append((name, factory, info))

            try:
                impl.function(register=register)
            except Exception as error:
                name = self.manager.get_name(impl.plugin) or repr(impl.plugin)
                distribution = self.distributions.get(name, "medzoo" if name.startswith("medzoo.") else "in-process")
                self._fail(name, distribution, f"{hook_name}: {type(error).__name__}: {error}", failures)
                continue
            calls.append((self.provider_name(impl.plugin), registered))
        return calls

    def provider_name(self, plugin: object) -> str:
        """The plugin's name, with its distribution for installed (entry-point) plugins."""
        name = self.manager.get_name(plugin) or repr(plugin)
        distribution = self.distributions.get(name)
        return f"{name} ({distribution})" if distribution else name


_lock = threading.Lock()


def installed_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Every entry point of the ``medzoo`` group in the installed distributions' metadata."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def source_checkout_builtins() -> list[importlib.metadata.EntryPoint]:
    """medzoo's own entry points read from ``pyproject.toml`` beside the package, for a checkout used
    without installing it (``PYTHONPATH`` pointing at it, as on a bare GPU machine)."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        raise PluginError(
            f"medzoo's built-in plugins are not registered (entry-point group {ENTRY_POINT_GROUP!r}) and there is "
            f"no {pyproject} to read them from; expected an installed medzoo (`pip install .`)"
        )
    table = f"[project.entry-points.{ENTRY_POINT_GROUP}]"
    entry_points, inside = [], False
    for line in pyproject.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            inside = line == table
        elif inside and "=" in line and not line.startswith("#"):
            name, _, value = line.partition("=")
            module = value.strip().strip('"')
            entry_points.append(importlib.metadata.EntryPoint(name.strip(), module, ENTRY_POINT_GROUP))
    if not entry_points:
        raise PluginError(f"{pyproject}: no {table} table; expected medzoo's built-in plugins listed there")
    return entry_points


def _distribution_of(entry_point: importlib.metadata.EntryPoint) -> str:
    return entry_point.dist.name if entry_point.dist else "unknown distribution"


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def allowed_plugins() -> set[str] | None:
    value = os.environ.get(RESTRICT_ENV_VAR)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


@functools.cache
def _system() -> PluginSystem:
    system = PluginSystem()
    system.load_entry_points(allowed_plugins())
    system.check()
    return system


def plugin_system() -> PluginSystem:
    """The process-wide plugin system, loaded on first use."""
    with _lock:
        return _system()


def components() -> ComponentRegistry:
    """The registry of every component from every loaded plugin."""
    return plugin_system().registry


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register an in-process plugin object (tests, notebooks); the registry is rebuilt on next use.

    A plugin with a misspelt or ill-formed hook raises ``PluginError`` and stays unregistered.
    """
    system = plugin_system()
    try:
        system.manager.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as error:
        raise PluginError(f"plugin {name or plugin!r}: {one_line(error)}") from None
    try:
        system.check()
    except PluginError:
        system.manager.unregister(plugin)
        raise
    finally:
        system.invalidate()


def unregister_plugin(plugin: object) -> None:
    system = plugin_system()
    system.manager.unregister(plugin)
    system.invalidate()


def reset_plugins() -> None:
    """Forget loaded plugins so the next use reloads them (tests)."""
    with _lock:
        _system.cache_clear()
