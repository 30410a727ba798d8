"""The table of registered components: kind -> name -> (factory, provider, info), each kind filled on first use.

Contenders (hook ``register_contenders``) are a kind here like the others, though not parts of a model."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Mapping
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
    "register_optimizers": "optimizer",
    "register_lr_schedules": "lr_schedule",
    "register_objectives": "objective",
    "register_rewards": "reward",
    "register_benchmarks": "benchmark",
    "register_instruct_backends": "instruct_backend",
    "register_contenders": "contender",
}

KINDS: tuple[str, ...] = tuple(HOOK_KINDS.values())
#: whole models from outside medzoo that ``medzoo eval --contender`` answers with, not parts a recipe assembles
CONTENDER_KIND = "contender"
#: the kinds whose components a recipe assembles (every kind but contenders)
COMPONENT_KINDS: tuple[str, ...] = tuple(kind for kind in KINDS if kind != CONTENDER_KIND)
#: kind -> what its factory must be, for kinds whose factory medzoo calls with fixed arguments
CALLABLE_FACTORIES: dict[str, str] = {CONTENDER_KIND: "a callable (source, **options)"}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


#: registration info keys medzoo reads, with what each must be (other keys are kept as given)
STRING_INFO = ("description", "licence", "pattern")
STRINGS_INFO = ("hub_ids", "examples")
MAPPING_INFO = ("tiny",)


@dataclass(frozen=True)
class Registration:
    """One registered component; ``info`` holds what the plugin declared (description, hub ids, licence...)."""

    kind: str
    name: str
    factory: Any
    provider: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return self.info.get("description") or ""

    @property
    def hub_ids(self) -> tuple[str, ...]:
        """Pretrained weights or data on the Hugging Face hub."""
        return self.info.get("hub_ids", ())

    @property
    def licence(self) -> str | None:
        """The licence of those weights or data (``None``: medzoo code only, or see the data's own release)."""
        return self.info.get("licence")

    @property
    def tiny(self) -> dict[str, Any]:
        """What tests build the component from: ``{"config": tiny_config()}`` for a buildable component (vision
        encoder, language model), else the registration's ``tiny=`` (arguments and ``options``; may be empty)."""
        tiny_config = getattr(self.factory, "tiny_config", None)
        if callable(tiny_config):
            return {"config": tiny_config()}
        return dict(self.info.get("tiny", {}))


def checked_info(kind: str, name: str, provider: str, info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with its known keys type-checked (``hub_ids`` and ``examples`` as tuples); a one-line error names
    the plugin and the key."""
    checked = dict(info)
    where = f"{provider}: {kind} {name!r}: registration key"
    for key in STRING_INFO:
        value = info.get(key)
        if value is not None and not isinstance(value, str):
            raise PluginError(f"{where} {key!r}: expected a string, got {type(value).__name__} {value!r}")
    for key in STRINGS_INFO:
        value = info.get(key, ())
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
                not all(isinstance(item, str) for item in value):
            raise PluginError(f"{where} {key!r}: expected a list of strings, got {type(value).__name__} {value!r}")
        if key in info:
            checked[key] = tuple(value)
    for key in MAPPING_INFO:
        value = info.get(key, {})
        if not isinstance(value, Mapping):
            raise PluginError(f"{where} {key!r}: expected a mapping, got {type(value).__name__} {value!r}")
    return checked


def _check_tiny_given_once(kind: str, name: str, provider: str, factory: Any, info: dict[str, Any]) -> None:
    if "tiny" in info and callable(getattr(factory, "tiny_config", None)):
        raise PluginError(f"{provider}: {kind} {name!r}: registration key 'tiny': the component's tiny_config() "
                          "already gives it; give it once")


class ComponentRegistry:
    """Components by kind and name; names are exact (no substring matching) and unique per kind.

    With a ``loader``, each kind is filled the first time it is read (``get``, ``names``, ``add``, iteration):
    ``loader(registry, kind)`` adds that kind's components and returns the note for its unknown-name errors. A loader that
    raises leaves the kind empty and unloaded, so the next read tries again (and raises again).
    """

    def __init__(self, note: str = "", loader: Callable[[ComponentRegistry, str], str] | None = None) -> None:
        self._entries: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        #: appended to unknown-name errors (e.g. which installed plugins failed to load); ``notes`` per kind
        self.note = note
        self.notes: dict[str, str] = {}
        self._loader = loader
        self._loaded: set[str] = set() if loader else set(KINDS)
        self._loading: set[str] = set()
        self._lock = threading.RLock()

    def _table(self, kind: str, provider: str | None = None, adding: bool = False) -> dict[str, Registration]:
        """The components of ``kind``, loaded first if they are not yet (``adding``: by the loader itself)."""
        table = self._entries.get(kind)
        if table is None:
            where = f"{provider}: " if provider else ""
            raise PluginError(f"{where}unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")
        if kind not in self._loaded:
            self._load(kind, adding)
        return table

    def _load(self, kind: str, adding: bool) -> None:
        with self._lock:  # one thread fills a kind; the others wait for it
            if kind in self._loaded:
                return
            if kind in self._loading:  # only this thread, from inside the loader of this kind
                if adding:
                    return
                raise PluginError(f"a {kind} registration read the {kind} components while they were being "
                                  "registered; expected it to read them when the component is used")
            assert self._loader is not None
            self._loading.add(kind)
            try:
                self.notes[kind] = self._loader(self, kind)
            except BaseException:
                self._entries[kind].clear()
                raise
            finally:
                self._loading.discard(kind)
            self._loaded.add(kind)

    def add(self, kind: str, name: str, factory: Any, provider: str, **info: Any) -> None:
        table = self._table(kind, provider, adding=True)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(
                f"{provider}: invalid {kind} name {name!r}; expected lower-case letters, digits, '.', '_' or '-'"
            )
        if factory is None:
            raise PluginError(f"{provider}: {kind} {name!r} registered without a factory")
        if kind in CALLABLE_FACTORIES and not callable(factory):
            raise PluginError(f"{provider}: {kind} {name!r}: expected {CALLABLE_FACTORIES[kind]}")
        existing = table.get(name)
        if existing is not None:
            raise PluginError(
                f"duplicate {kind} {name!r}: registered by {existing.provider} and by {provider}"
            )
        _check_tiny_given_once(kind, name, provider, factory, info)
        table[name] = Registration(kind, name, factory, provider, checked_info(kind, name, provider, info))

    def get(self, kind: str, name: str) -> Registration:
        """Exact lookup; a family registered with ``pattern=`` (e.g. ``mlp(?P<depth>\\d+)x_gelu``) matches whole names
        and its factory receives the named groups as integer or string keyword arguments."""
        table = self._table(kind)
        if name not in table:
            family = self._match_family(table, name)
            if family is not None:
                return family
            known = ", ".join(sorted(table)) or "none registered"
            note = self.notes.get(kind) or self.note
            note = f"; {note}" if note else ""
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
        if kind not in self._entries:
            raise KeyError(kind)
        return sorted(self._table(kind))

    def __iter__(self):
        for kind in KINDS:
            table = self._table(kind)
            for name in sorted(table):
                yield table[name]
