"""Loading plugins: built-ins and installed packages (entry-point group ``medzoo``), lazily and once.

``MEDZOO_PLUGINS=a,b`` restricts which installed (entry-point) plugins load; built-ins always load.
A plugin that fails to import is recorded with its distribution name and does not stop the others.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass

import pluggy

from medzoo.core import hookspecs
from medzoo.core.component_registry import HOOK_KINDS, ComponentRegistry
from medzoo.core.errors import PluginError

ENTRY_POINT_GROUP = "medzoo"
RESTRICT_ENV_VAR = "MEDZOO_PLUGINS"
logger = logging.getLogger(__name__)


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
        self.failures: list[PluginFailure] = []
        self._registry: ComponentRegistry | None = None

    def load_builtins(self) -> None:
        from medzoo.plugins.builtin import BUILTIN_PLUGINS

        for name, module_path in BUILTIN_PLUGINS.items():
            module = importlib.import_module(module_path)
            self.manager.register(module, name=f"medzoo.{name}")

    def load_entry_points(self, allowed: set[str] | None) -> None:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and entry_point.name not in allowed:
                continue
            distribution = entry_point.dist.name if entry_point.dist else "unknown distribution"
            if self.manager.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
                self.manager.register(plugin, name=entry_point.name)
            except Exception as error:  # a broken plugin must not take the others down
                failure = PluginFailure(entry_point.name, distribution, f"{type(error).__name__}: {error}")
                self.failures.append(failure)
                logger.warning("medzoo plugin %r from %s failed to load: %s", entry_point.name, distribution, failure.error)

    def check(self) -> None:
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            raise PluginError(f"plugin {error.plugin!r}: {error}") from None

    @property
    def registry(self) -> ComponentRegistry:
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def _collect(self) -> ComponentRegistry:
        registry = ComponentRegistry()
        for hook_name, kind in HOOK_KINDS.items():
            hook = getattr(self.manager.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):
                provider = self.provider_name(impl.plugin)

                def register(name, factory, _kind=kind, _provider=provider, **info):
                    registry.add(_kind, name, factory, _provider, **info)

                impl.function(register=register)
        return registry

    def provider_name(self, plugin: object) -> str:
        name = self.manager.get_name(plugin) or repr(plugin)
        for dist_plugin, dist in self.manager.list_plugin_distinfo():
            if dist_plugin is plugin:
                return f"{name} ({dist.project_name})"
        return name


_lock = threading.Lock()


def allowed_plugins() -> set[str] | None:
    value = os.environ.get(RESTRICT_ENV_VAR)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


@functools.cache
def _system() -> PluginSystem:
    system = PluginSystem()
    system.load_builtins()
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
    """Register an in-process plugin object (tests, notebooks); the registry is rebuilt on next use."""
    system = plugin_system()
    system.manager.register(plugin, name=name)
    system.check()
    system._registry = None


def unregister_plugin(plugin: object) -> None:
    system = plugin_system()
    system.manager.unregister(plugin)
    system._registry = None


def reset_plugins() -> None:
    """Forget loaded plugins so the next use reloads them (tests)."""
    with _lock:
        _system.cache_clear()
