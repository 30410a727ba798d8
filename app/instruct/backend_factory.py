"""Building a registered backend from its name, a model and ``key=value`` options, with one-line errors."""

from __future__ import annotations

import inspect
import json
from typing import Any

from medzoo.core.errors import PluginError
from medzoo.core.interfaces.instruct_backend import InstructBackend


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as json when it parses (numbers, booleans, objects), else a string."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise PluginError(f"backend option {text!r}: expected key=value")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def create_backend(name: str, model: str, **options: Any) -> InstructBackend:
    """Look ``name`` up among registered instruct backends and construct it; unknown options name the valid ones."""
    from medzoo.core.plugin_system.manager import components

    factory = components().get("instruct_backend", name).factory
    parameters = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(options) - set(parameters)) if not accepts_any else []
    if unknown:
        valid = ", ".join(p for p in parameters if p not in ("self", "model")) or "none"
        raise PluginError(f"instruct backend {name!r}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    backend = factory(model, **options)
    if not isinstance(backend, InstructBackend):
        raise PluginError(f"instruct backend {name!r} did not build an InstructBackend (got {type(backend).__name__})")
    return backend


def collect_options(base_url: str | None, api_key: str | None, options: tuple[str, ...]) -> dict[str, Any]:
    """Backend keyword options from the common CLI flags plus repeated ``--option key=value``."""
    collected = dict(parse_option(text) for text in options)
    if base_url is not None:
        collected["base_url"] = base_url
    if api_key is not None:
        collected["api_key"] = api_key
    return collected
