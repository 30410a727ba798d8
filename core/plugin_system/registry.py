"""The table of registered components: kind -> name -> (factory, provider, info)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from medzoo.core.errors import PluginError, did_you_mean

# hook name -> component kind
HOOK_KINDS: dict[str, str] = {
    "register_vision_encoders": "vision_encoder",
    "register_connectors": "connector",
    "register_language_models": "language_model",
    "register_conversation_templates": "template",
    "register_tuning_strategies": "tuning",
    "register_datasets": "dataset",
    "register_curricula": "curriculum",
    "register_benchmarks": "benchmark",
    "register_instruct_backends": "instruct_backend",
}

KINDS: tuple[str, ...] = tuple(HOOK_KINDS.values())
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass(frozen=True)
class Registration:
    """One registered component."""

    kind: str
    name: str
    factory: Any
    provider: str
    info: dict[str, Any] = field(default_factory=dict)


class ComponentRegistry:
    """Components by kind and name; names are exact (no substring matching) and unique per kind."""

    def __init__(self, note: str = "") -> None:
        self._entries: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        #: appended to unknown-name errors (e.g. which installed plugins failed to load)
        self.note = note

    def add(self, kind: str, name: str, factory: Any, provider: str, **info: Any) -> None:
        if kind not in self._entries:
            raise PluginError(f"{provider}: unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(
                f"{provider}: invalid {kind} name {name!r}; expected lower-case letters, digits, '.', '_' or '-'"
            )
        if factory is None:
            raise PluginError(f"{provider}: {kind} {name!r} registered without a factory")
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"duplicate {kind} {name!r}: registered by {existing.provider} and by {provider}"
            )
        self._entries[kind][name] = Registration(kind, name, factory, provider, dict(info))

    def get(self, kind: str, name: str) -> Registration:
        """Exact lookup; a family registered with ``pattern=`` (e.g. ``mlp(?P<depth>\\d+)x_gelu``) matches whole names
        and its factory receives the named groups as integer or string keyword arguments."""
        table = self._entries.get(kind)
        if table is None:
            raise PluginError(f"unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")
        if name not in table:
            family = self._match_family(table, name)
            if family is not None:
                return family
            known = ", ".join(sorted(table)) or "none registered"
            note = f"; {self.note}" if self.note else ""
            raise PluginError(f"unknown {kind} {name!r}{did_you_mean(name, table)}; known: {known}{note}")
        return table[name]

    @staticmethod
    def _match_family(table: dict[str, Registration], name: str) -> Registration | None:
        for entry in table.values():
            pattern = entry.info.get("pattern")
            match = re.fullmatch(pattern, name) if pattern else None
            if match:
                arguments = {k: int(v) if v.isdigit() else v for k, v in match.groupdict().items()}
                factory = functools.partial(entry.factory, **arguments)
                return Registration(entry.kind, name, factory, entry.provider, dict(entry.info, family=entry.name))
        return None

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def __iter__(self):
        for kind in KINDS:
            for name in sorted(self._entries[kind]):
                yield self._entries[kind][name]
