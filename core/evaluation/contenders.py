"""Contenders: answerers from outside medzoo (hook ``register_contenders``), looked up by name.

A contender factory is a callable ``(source, **options) -> Answerer``; ``source`` is what the user names (a hub id
or a local folder for ``hf-vlm``). Contenders are collected here rather than in the component registry: they are
whole models to compare against, not parts a recipe assembles.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medzoo.core.errors import PluginError, did_you_mean
from medzoo.core.interfaces.answerer import Answerer
from medzoo.core.plugin_system.manager import PluginFailure, plugin_system
from medzoo.core.plugin_system.registry import NAME_PATTERN


@dataclass(frozen=True)
class Contender:
    """One registered contender: its factory, the plugin that registered it and what it declared."""

    name: str
    factory: Callable[..., Answerer]
    provider: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return str(self.info.get("description") or "")


def contenders() -> dict[str, Contender]:
    """Every contender of every loaded plugin, by name (a bad name or a duplicate is a PluginError; a hook that
    raises is left out, see :func:`collect_contenders`)."""
    return collect_contenders()[0]


def collect_contenders() -> tuple[dict[str, Contender], list[PluginFailure]]:
    """(every contender by name, the plugins whose ``register_contenders`` raised): a failing plugin does not take
    the others down, as for components; a bad name or a duplicate is a PluginError."""
    found: dict[str, Contender] = {}
    failures: list[PluginFailure] = []
    for provider, registered in plugin_system().call_registration_hook("register_contenders", failures):
        for name, factory, info in registered:
            _add(found, name, factory, provider, info)
    return found, failures


def _add(found: dict[str, Contender], name: Any, factory: Any, provider: str, info: dict[str, Any]) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(f"{provider}: invalid contender name {name!r}; expected lower-case letters, "
                          "digits, '.', '_' or '-'")
    if not callable(factory):
        raise PluginError(f"{provider}: contender {name!r}: expected a callable (source, **options)")
    if name in found:
        raise PluginError(f"duplicate contender {name!r}: registered by {found[name].provider} and by {provider}")
    found[name] = Contender(name, factory, provider, dict(info))


def get_contender(name: str) -> Contender:
    known, failures = collect_contenders()
    if name not in known:
        listed = ", ".join(sorted(known)) or "none registered"
        failed = "; ".join(f"{f.plugin} ({f.distribution}): {f.error}" for f in failures)
        note = f"; plugins that failed to load: {failed}" if failed else ""
        raise PluginError(f"unknown contender {name!r}{did_you_mean(name, known)}; known: {listed}{note}")
    return known[name]


def _check_options(name: str, factory: Callable[..., Answerer], options: dict[str, Any]) -> None:
    """A PluginError naming the first option the factory does not take (after ``source``)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: let it check its own options
        return
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    allowed = [parameter.name for parameter in parameters if parameter.kind in named][1:]
    for option in options:
        if option not in allowed:
            expected = ", ".join(allowed) or "none"
            raise PluginError(f"contender {name}: unknown option {option!r}{did_you_mean(option, allowed)}; "
                              f"expected one of: {expected}")


def load_contender(name: str, source: str, **options: Any) -> Answerer:
    """The answerer of contender ``name`` for ``source``; an option it does not take is a PluginError naming it."""
    entry = get_contender(name)
    _check_options(name, entry.factory, options)
    answerer = entry.factory(source, **options)
    if not isinstance(answerer, Answerer):
        raise PluginError(f"contender {name} ({entry.provider}): its factory returned {type(answerer).__name__}, "
                          "expected an Answerer")
    return answerer
