"""Where an objective's rollouts are generated: medzoo's inference engine, or an external server such as vLLM.

An objective that ``generates_rollouts`` (GRPO) asks its backend for ``count`` sampled completions of each prompt.
Completion ``k`` of a prompt is drawn with the seed ``request.seed + k``, so a rollout is the same on every run,
batch composition and process count (this is what makes ``--resume`` and DDP give the weights of one
uninterrupted process). ``sync_weights`` is called after every optimizer step with the policy as it now is; a
backend holding its own copy of the weights (vLLM) loads them, the engine backend needs nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medzoo.core.interfaces.conversation import Message


@dataclass(frozen=True)
class RolloutRequest:
    """``count`` completions wanted for one prompt (``messages``: the conversation up to the reply)."""

    prompt_id: str
    messages: list[Message]
    image: Path | None
    count: int
    seed: int
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    #: the prompt as the stage's processor encoded it (an ``EncodedSample`` with its pixels), for backends that
    #: generate from medzoo's own encoding; backends with their own renderer (vLLM) use ``messages``
    prompt: Any = None


@dataclass(frozen=True)
class RolloutCompletion:
    """One sampled completion: its token ids (what the policy is trained on) and their text."""

    token_ids: tuple[int, ...]
    text: str
    #: "stop" (end of sequence or a stop string) or "length" (the token budget ran out)
    finish_reason: str


class RolloutBackend(ABC):
    """Generates rollouts from the policy; one per stage, built before its first step."""

    name: str = "rollouts"

    @abstractmethod
    def generate(self, model: Any, requests: Sequence[RolloutRequest]) -> list[list[RolloutCompletion]]:
        """``request.count`` completions per request, in request order (completion ``k`` seeded ``seed + k``)."""

    def sync_weights(self, model: Any) -> None:
        """Make the backend generate with ``model``'s current weights (called after each optimizer step)."""
        return None

    def close(self) -> None:
        """Release what the backend holds (a server, a second engine)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records of the backend."""
        return {"name": self.name}
