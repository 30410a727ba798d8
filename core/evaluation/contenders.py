"""Contenders: answerers from outside medzoo (hook ``register_contenders``), looked up by name.

A contender factory is a callable ``(source, **options) -> Answerer``; ``source`` is what the user names (a hub id
or a local folder for ``hf-vlm``). Contenders are registered in the component registry as kind ``contender``
(whole models to compare against, not parts a recipe assembles); this module checks a contender's options and
what its factory returns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from medzoo.core.errors import PluginError, did_you_mean
from medzoo.core.interfaces.answerer import Answerer
from medzoo.core.plugin_system.manager import components
from medzoo.core.plugin_system.registry import CONTENDER_KIND, Registration


def contenders() -> dict[str, Registration]:
    """Every contender of every loaded plugin, by name (a bad name or a duplicate is a PluginError; a hook that
    raises is left out and listed in ``plugin_system().failures``)."""
    registry = components()
    return {name: registry.get(CONTENDER_KIND, name) for name in registry.names(CONTENDER_KIND)}


def get_contender(name: str) -> Registration:
    """The registration of contender ``name``; an unknown name is a PluginError listing the known ones."""
    return components().get(CONTENDER_KIND, name)


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
