"""Registers the medical-VQA, ColonINST and multiple-choice benchmarks."""

from __future__ import annotations

from typing import Any

from medzoo import Register, hookimpl
from medzoo.plugins.benchmarks.coloninst import COLONINST_BENCHMARKS
from medzoo.plugins.benchmarks.medvqa import MEDVQA_BENCHMARKS
from medzoo.plugins.benchmarks.multiple_choice.gmai_mmbench import GMAI_BENCHMARKS
from medzoo.plugins.benchmarks.multiple_choice.medxpertqa import MEDXPERTQA_BENCHMARKS
from medzoo.plugins.benchmarks.multiple_choice.mmmu import MMMU_BENCHMARKS
from medzoo.plugins.benchmarks.multiple_choice.omnimedvqa import OMNIMEDVQA_BENCHMARKS
from medzoo.plugins.benchmarks.multiple_choice.pmc_vqa import PMC_VQA_BENCHMARKS


def _test_file(path: str) -> dict[str, Any]:
    return {"path": f"{{synth}}/{path}", "image_root": "{synth}/images"}


SYNTH_TINY = {"options": {"root": "{synth}"}}

#: what each benchmark's class does not say itself: hub ids, licence, tiny test config (description: the
#: class docstring's first line unless given here)
INFO: dict[str, dict[str, Any]] = {
    "vqa-rad": {"hub_ids": ("flaviagiammarino/vqa-rad",), "licence": "CC0-1.0",
                "tiny": _test_file("vqa_rad/test.json")},
    "slake": {"hub_ids": ("BoKelvin/SLAKE",), "tiny": _test_file("slake/test.json")},
    "pathvqa": {"hub_ids": ("flaviagiammarino/path-vqa",), "tiny": _test_file("pathvqa/qas/test/test_qa.pkl")},
    "coloninst-cls": {"tiny": _test_file("coloninst/test/cls_test.json")},
    "coloninst-reg": {"tiny": _test_file("coloninst/test/reg_test.json")},
    "coloninst-rec": {"tiny": _test_file("coloninst/test/rec_test.json")},
    "pmc-vqa": {"hub_ids": ("RadGenome/PMC-VQA", "xmcmic/PMC-VQA"), "licence": "CC-BY-SA-4.0",
                "tiny": _test_file("pmc_vqa/test_2.csv")},
    "omnimedvqa": {"hub_ids": ("foreverbeliever/OmniMedVQA",),
                   "tiny": {"path": "{synth}/omnimedvqa", "image_root": "{synth}"}},
    "gmai-mmbench": {"hub_ids": ("VLMEval/GMAI-MMBench", "OpenGVLab/GMAI-MMBench"),
                     "tiny": {"path": "{synth}/gmai_mmbench/GMAI-MMBench_VAL.tsv"}},
    "coloninst-cap": {"tiny": _test_file("coloninst/test/cap_test.json")},
    "medxpertqa-mm": {"hub_ids": ("TsinghuaC3I/MedXpertQA",), "licence": "MIT",
                      "tiny": {"path": "{synth}/medxpertqa/MM/test.jsonl"}},
    # MedEvalKit's MMMU scoring never counts an open answer right, so the tiny configs (which answer every
    # question with its reference) score with the mmmu protocol
    "mmmu-med": {"hub_ids": ("MMMU/MMMU",), "licence": "Apache-2.0",
                 "tiny": {"path": "{synth}/mmmu", "options": {"protocol": "mmmu"}}},
    "synth-vqa-rad": {"tiny": SYNTH_TINY},
    "synth-slake": {"tiny": SYNTH_TINY},
    "synth-pathvqa": {"tiny": SYNTH_TINY},
    "synth-pmc-vqa": {"tiny": SYNTH_TINY},
    "synth-omnimedvqa": {"tiny": SYNTH_TINY},
    "synth-gmai-mmbench": {"tiny": SYNTH_TINY},
    "synth-medxpertqa-mm": {"tiny": SYNTH_TINY},
    "synth-mmmu-med": {"tiny": {"options": {"root": "{synth}", "protocol": "mmmu"}}},
    "synth-coloninst-cls": {"description": "ColonINST-shaped synthetic classification test set",
                            "tiny": SYNTH_TINY},
    "synth-coloninst-reg": {"description": "ColonINST-shaped synthetic referring-expression-generation test set",
                            "tiny": SYNTH_TINY},
    "synth-coloninst-rec": {"description": "ColonINST-shaped synthetic referring-expression-comprehension test set",
                            "tiny": SYNTH_TINY},
    "synth-coloninst-cap": {"description": "ColonINST-shaped synthetic captioning test set", "tiny": SYNTH_TINY},
}


@hookimpl
def register_benchmarks(register: Register) -> None:
    for benchmark in (*MEDVQA_BENCHMARKS, *COLONINST_BENCHMARKS, *PMC_VQA_BENCHMARKS,
                      *OMNIMEDVQA_BENCHMARKS, *GMAI_BENCHMARKS, *MEDXPERTQA_BENCHMARKS,
                      *MMMU_BENCHMARKS):
        info = dict(INFO.get(benchmark.name, {}))
        description = info.pop("description", (benchmark.__doc__ or benchmark.name).strip().splitlines()[0])
        register(
            benchmark.name,
            benchmark,
            description=description,
            metric=benchmark.metric,
            headline_metrics=benchmark.headline_metrics,
            **info,
        )
