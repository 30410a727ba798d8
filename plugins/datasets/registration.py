"""Registers the built-in caption and conversation readers (``llava-json``, ``pmc-captions``)."""

from __future__ import annotations

from medzoo import Register, hookimpl
from medzoo.plugins.datasets.llava_json import LlavaJsonReader
from medzoo.plugins.datasets.pmc_captions import PmcCaptionsReader


@hookimpl
def register_datasets(register: Register) -> None:
    register("llava-json", LlavaJsonReader,
             description="LLaVA conversation JSON / JSONL (local file or hub dataset id)", stage="instruct",
             tiny={"path": "{synth}/llava_med/instruct.json", "image_root": "{synth}/images"})
    register("pmc-captions", PmcCaptionsReader,
             description="PMC figure captions or LLaVA-Med alignment records -> stage-1 records", stage="alignment",
             tiny={"path": "{synth}/pmc/captions.jsonl", "image_root": "{synth}/images"})
