"""The GRPO objective's switch to vLLM: ``rollouts: {backend: vllm, <options>}`` (``vllm_rollouts``).

``check_vllm_options`` checks the options when the recipe loads (no vLLM or GPU needed); ``vllm_backend`` builds
the backend when the stage starts, or says in one line that this machine cannot run vLLM. Both take the
``rollouts`` mapping without its ``backend`` key and raise ``ValueError`` with the key under ``rollouts.``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medzoo import RolloutBackend
from medzoo.plugins.objectives.vllm_rollouts import VllmOptions, vllm_rollouts


def check_vllm_options(options: Mapping[str, Any]) -> None:
    VllmOptions.parse(dict(options))


def vllm_backend(options: Mapping[str, Any]) -> RolloutBackend:
    return vllm_rollouts(dict(options))
