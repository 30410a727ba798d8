"""Registers the medical-VQA and ColonINST dataset readers."""

from __future__ import annotations

from medzoo import hookimpl
from medzoo.plugins.datasets.colon_inst import ColonInstReader
from medzoo.plugins.datasets.med_vqa import MedVqaReader


@hookimpl
def register_datasets(register) -> None:
    register(
        "med-vqa",
        MedVqaReader,
        description="VQA-RAD (OSF json), SLAKE json, PathVQA pkl, Hugging Face parquet copies, LLaVA-Med test.json",
        tiny={"path": "{synth}/slake/train.json", "image_root": "{synth}/images", "options": {"q_lang": "en"}},
    )
    register(
        "colon-inst",
        ColonInstReader,
        description="ColonINST conversation json (CLS / REG / REC / CAP), boxes parsed into metadata",
        tiny={"path": "{synth}/coloninst/train/reg_train.json", "image_root": "{synth}/images"},
    )
