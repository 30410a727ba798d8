"""Registers the built-in instruction backends ``openai`` and ``hf`` (torch loads only when ``hf`` runs; httpx
and asyncio only once the instruction backends are read, not when any other component is looked up)."""

from __future__ import annotations

from medzoo import hookimpl


@hookimpl
def register_instruct_backends(register) -> None:
    from medzoo.plugins.instruct.backends.hf_backend import HFBackend
    from medzoo.plugins.instruct.backends.openai_backend import OpenAIBackend

    register(
        "openai",
        OpenAIBackend,
        description="any OpenAI-compatible /v1/chat/completions endpoint (OpenAI, Azure v1, vLLM, medzoo serve)",
        tiny={"model": "tiny-judge", "options": {"base_url": "http://127.0.0.1:9/v1", "timeout": 1.0}},
    )
    register(
        "hf",
        HFBackend,
        description="a local transformers causal LM (hub id or folder), generating in a worker thread",
        tiny={"model": "medzoo-tiny", "options": {"device": "cpu", "dtype": "float32"}},
    )
