"""An on-disk cache of backend responses, keyed by a hash of backend, model, messages and parameters.

Each response is one small json file written atomically (temporary file + rename), so a run killed at any
moment leaves only complete entries behind and a rerun pays only for the requests that never came back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medzoo.core.atomic_writes import write_json_atomically
from medzoo.core.interfaces.instruct_backend import BackendReply


def cache_key(backend: str, model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """A stable sha256 over everything that determines the reply."""
    payload = json.dumps(
        {"backend": backend, "model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """Completions stored under ``root/<key[:2]>/<key>.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> BackendReply | None:
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            return BackendReply(
                text=entry["text"],
                prompt_tokens=int(entry.get("prompt_tokens", 0)),
                completion_tokens=int(entry.get("completion_tokens", 0)),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unreadable entry is treated as missing and overwritten on the next put

    def put(self, key: str, completion: BackendReply, metadata: dict[str, Any] | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            **(metadata or {}),
        }
        write_json_atomically(path, entry, ensure_ascii=False)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
