"""Registers the built-in caption, conversation and preference readers (``llava-json``, ``pmc-captions``,
``llava-preference``, ``rlaif-v``)."""

from __future__ import annotations

from medzoo import Register, hookimpl
from medzoo.plugins.datasets.llava_json import LlavaJsonReader
from medzoo.plugins.datasets.pmc_captions import PmcCaptionsReader
from medzoo.plugins.datasets.preference import LlavaPreferenceReader, RlaifVReader


@hookimpl
def register_datasets(register: Register) -> None:
    register("llava-json", LlavaJsonReader,
             description="LLaVA conversation JSON / JSONL (local file or hub dataset id)", stage="instruct",
             tiny={"path": "{synth}/llava_med/instruct.json", "image_root": "{synth}/images"})
    register("pmc-captions", PmcCaptionsReader,
             description="PMC figure captions or LLaVA-Med alignment records -> stage-1 records", stage="alignment",
             tiny={"path": "{synth}/pmc/captions.jsonl", "image_root": "{synth}/images"})
    register("llava-preference", LlavaPreferenceReader,
             description="preference pairs: LLaVA-style prompt turns + chosen / rejected, or STLLaVA-Med-DPO's "
                         "chosen_conversations / reject_conversations", stage="preference", records="preference",
             tiny={"path": "{synth}/preference/train.json", "image_root": "{synth}/images"})
    register("rlaif-v", RlaifVReader,
             description="preference pairs with RLAIF-V's fields (question, chosen, rejected, image / image_path)",
             stage="preference", records="preference", hub_ids=["openbmb/RLAIF-V-Dataset"],
             tiny={"path": "{synth}/preference/rlaif_v_train.jsonl", "image_root": "{synth}/images"})
