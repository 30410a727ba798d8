"""Orchestration: render every image, then write each dataset format and a manifest.

Layout under ``output_dir`` (all image paths in the files are relative to ``output_dir/images``)::

    manifest.json                                   generator, seed, sizes, counts, format version, complete
    images/<domain>/<split>_<n>.png                 64x64 RGB PNG
    pmc/captions.jsonl                              PMC-style figure captions (train images)
    llava_med/alignment.json, instruct.json         LLaVA-Med stage-1 / stage-2 llava-json
    vqa_rad/vqa_rad.json, vqa_rad/test.json         VQA-RAD OSF json, LLaVA-Med test.json
    slake/{train,validation,test}.json              SLAKE
    pathvqa/qas/{train,test}/{split}_qa.pkl         PathVQA
    coloninst/{train,val,test}/{cls,reg,rec,cap}_{split}.json   ColonINST
    coloninst/rl/rec_rl.json                        ColonINST REC prompts for reinforcement learning (own frames)
    pmc_vqa/test_2.csv                              PMC-VQA test_2.csv (multiple choice, MedEvalKit's copy)
    omnimedvqa/QA_information/Open-access/*.json    OmniMedVQA (the same questions, one file per domain)
    gmai_mmbench/GMAI-MMBench_VAL.tsv               GMAI-MMBench as VLMEvalKit's TSV (the same questions)
    medxpertqa/MM/test.jsonl, medxpertqa/images/    MedXpertQA-MM (two images per question, by file name)
    mmmu/<Subject>/validation-00000-of-00001.parquet   MMMU Health & Medicine (images embedded; pyarrow)
    preference/{train,test}.json, preference/rlaif_v_train.jsonl   preference pairs (llava-preference, rlaif-v)

Those names are those of the real data sets, so ``synthesize`` never writes over a folder holding any of them
without its own manifest (``"generator": "medzoo.app.data_synth"``). The manifest is written first marked
``"complete": false`` and rewritten complete at the end: an interrupted synthesis is recognised as medzoo's and
redone, and so is a complete set of an older ``FORMAT_VERSION`` (it lacks files recipes now read). The data files
are written atomically; an image is written in place (the incomplete manifest covers it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from medzoo.app.data_synth import multi_image, multiple_choice, preference, sampling, writers
from medzoo.app.data_synth.images import (
    DOMAINS,
    RADIOLOGY,
    SPLITS,
    SynthImage,
    per_domain_counts,
    render_split,
)
from medzoo.core.atomic_writes import NotOursError, write_atomically
from medzoo.core.errors import DataError

#: 2: the preference pairs (``preference/``) were added; 3: the multi-image twins (``medxpertqa/``, ``mmmu/``);
#: 4: the reinforcement-learning prompt pool (``coloninst/rl/``); a complete set of an older version is ``outdated``
FORMAT_VERSION = 4
DEFAULT_SEED = 0
#: images per split, over all five domains: enough variety for the tiny recipe to learn to read the images
#: (with 400 training images it memorises them and answers closed questions from the question alone)
DEFAULT_SIZES: dict[str, int] = {"train": 4000, "val": 100, "test": 300}
#: the ``rl`` size: colonoscopy frames of their own, whose ColonINST REC prompts (``coloninst/rl/rec_rl.json``, about
#: three in four frames show a finding) feed a GRPO stage with prompts no supervised stage saw, as RL prompt sets
#: are kept apart from SFT data; by default ``RL_SHARE`` x the ``train`` size (4000 -> 2400 frames, 1800 prompts)
RL_SIZE = "rl"
RL_SHARE = 0.6
#: the top-level entries ``synthesize`` writes (and ``--overwrite`` may replace)
OUTPUT_ENTRIES = ("manifest.json", "images", "pmc", "llava_med", "vqa_rad", "slake", "pathvqa", "coloninst", "pmc_vqa",
                  "omnimedvqa", "gmai_mmbench", "medxpertqa", "mmmu", "preference")
MANIFEST = "manifest.json"
#: the generator's id in every manifest: the module's first home, kept so folders synthesised before the move
#: stay medzoo's own
GENERATOR = "medzoo.plugins.data.synth"
SynthesisState = Literal["absent", "complete", "incomplete", "outdated", "foreign"]


def synthesis_state(output_dir: str | Path) -> SynthesisState:
    """What ``output_dir`` holds: no synthetic set (``absent``), medzoo's set finished or interrupted, or a
    ``manifest.json`` medzoo did not write (``foreign``). A manifest without ``complete`` predates the flag and
    was written last, so it means complete; a complete set of an older ``format_version`` is ``outdated``."""
    path = Path(output_dir) / MANIFEST
    if not path.exists():
        return "absent"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "foreign"
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
        return "foreign"
    if manifest.get("complete", True) is not True:
        return "incomplete"
    return "complete" if manifest.get("format_version") == FORMAT_VERSION else "outdated"


def refuse_foreign_data(output_dir: str | Path) -> None:
    """Raise :class:`NotOursError` naming the first entry synthesis would write that medzoo did not write."""
    root = Path(output_dir)
    if synthesis_state(root) in ("complete", "incomplete", "outdated"):
        return
    clashes = [root / entry for entry in OUTPUT_ENTRIES if (root / entry).exists()]
    if clashes:
        raise NotOursError(
            f"{clashes[0]}: exists in a folder without medzoo's synthesis {MANIFEST} (generator {GENERATOR}); "
            "refusing to write the synthetic data set over it: choose another data root (data.root / --output), "
            "or set data.synthesize=false to use the data there"
        )


def resolve_sizes(sizes: Mapping[str, int] | None) -> dict[str, int]:
    """Defaults updated with ``sizes``, and ``rl`` (when not given) ``RL_SHARE`` x ``train``; unknown keys or
    negative / non-integer values raise DataError."""
    resolved = dict(DEFAULT_SIZES)
    known = (*DEFAULT_SIZES, RL_SIZE)
    for key, value in (sizes or {}).items():
        if key not in known:
            raise DataError(f"synthetic data size {key!r} is unknown; expected one of {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"synthetic data size {key}={value!r}: expected a non-negative integer")
        resolved[key] = value
    resolved.setdefault(RL_SIZE, round(RL_SHARE * resolved["train"]))
    return resolved


def synthesize(output_dir: str | Path, seed: int = DEFAULT_SEED, sizes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Write the synthetic data set into ``output_dir`` and return its manifest (also written to manifest.json).

    The same seed and sizes give byte-identical files. A folder holding any of the output entries without
    medzoo's synthesis manifest is refused (:class:`NotOursError`) before anything is written.
    """
    root = Path(output_dir)
    resolved = resolve_sizes(sizes)
    refuse_foreign_data(root)
    started = {"format_version": FORMAT_VERSION, "generator": GENERATOR, "seed": seed, "sizes": resolved,
               "complete": False}
    writers.write_json(root / MANIFEST, started)
    images: dict[str, dict[str, list[SynthImage]]] = {domain.name: {} for domain in DOMAINS}
    for split in SPLITS:
        for domain in DOMAINS:
            count = per_domain_counts(resolved[split])[domain.name]
            images[domain.name][split] = render_split(domain, split, count, seed, root / "images")
    colonoscopy = next(domain for domain in DOMAINS if domain.name == "colonoscopy")
    images["colonoscopy"][RL_SIZE] = render_split(colonoscopy, RL_SIZE, resolved[RL_SIZE], seed, root / "images")

    def radiology(split: str) -> list[SynthImage]:
        return [image for name in RADIOLOGY for image in images[name][split]]

    train_images = [image for domain in DOMAINS for image in images[domain.name]["train"]]
    files: dict[str, Any] = {}

    captions = writers.pmc_caption_records(train_images, sampling.stream(seed, "pmc"))
    files["pmc/captions.jsonl"] = captions
    files["llava_med/alignment.json"] = writers.alignment_records(captions)
    files["llava_med/instruct.json"] = writers.instruct_records(train_images, sampling.stream(seed, "instruct"))

    osf, test_json = writers.vqa_rad_records(radiology("train"), radiology("test"), sampling.stream(seed, "vqa_rad"))
    files["vqa_rad/vqa_rad.json"], files["vqa_rad/test.json"] = osf, test_json

    slake = writers.slake_records({"train": radiology("train"), "validation": radiology("val"),
                                   "test": radiology("test")}, sampling.stream(seed, "slake"))
    for split, records in slake.items():
        files[f"slake/{split}.json"] = records

    for split in ("train", "test"):
        rows = writers.pathvqa_records(images["histology"][split], sampling.stream(seed, f"pathvqa/{split}"))
        files[f"pathvqa/qas/{split}/{split}_qa.pkl"] = rows

    for split in SPLITS:
        for task, records in writers.coloninst_records(images["colonoscopy"][split], split).items():
            files[f"coloninst/{split}/{task}_{split}.json"] = records
    files["coloninst/rl/rec_rl.json"] = writers.coloninst_records(images["colonoscopy"][RL_SIZE], RL_SIZE)["rec"]

    test_images = [image for domain in DOMAINS for image in images[domain.name]["test"]]
    choices = multiple_choice.choice_questions(test_images, sampling.stream(seed, "pmc_vqa"))
    files["pmc_vqa/test_2.csv"] = multiple_choice.pmc_vqa_rows(choices)
    for name, records in multiple_choice.omnimedvqa_records(choices).items():
        files[f"omnimedvqa/QA_information/Open-access/{name}"] = records
    files["gmai_mmbench/GMAI-MMBench_VAL.tsv"] = multiple_choice.gmai_rows(choices, root / "images")
    pairs = multi_image.image_pairs(test_images, sampling.stream(seed, "multi_image"))
    records, named = multi_image.medxpertqa_records(pairs, sampling.stream(seed, "medxpertqa"))
    files["medxpertqa/MM/test.jsonl"] = records
    for name, relative in named.items():
        write_atomically(root / "medxpertqa" / "images" / name, (root / "images" / relative).read_bytes())
    for subject, rows in multi_image.mmmu_rows(pairs, sampling.stream(seed, "mmmu"), root / "images").items():
        files[f"mmmu/{subject}/{multi_image.MMMU_FILE}"] = rows
    files["preference/train.json"] = preference.llava_preference_records(train_images, sampling.stream(seed, "pref"))
    files["preference/test.json"] = preference.llava_preference_records(test_images, sampling.stream(seed, "pref/test"))
    files["preference/rlaif_v_train.jsonl"] = preference.rlaif_v_records(train_images, sampling.stream(seed, "rlaif"))

    for relative, records in files.items():
        path = root / relative
        if relative.endswith(".csv"):
            multiple_choice.write_csv(path, records)
        elif relative.endswith(".tsv"):
            multiple_choice.write_csv(path, records, multiple_choice.GMAI_COLUMNS)
        elif relative.endswith(".jsonl"):
            writers.write_jsonl(path, records)
        elif relative.endswith(".pkl"):
            writers.write_pickle(path, records)
        elif relative.endswith(".parquet"):
            multi_image.write_parquet(path, records)
        else:
            writers.write_json(path, records)

    manifest = {
        "format_version": FORMAT_VERSION,
        "generator": GENERATOR,
        "seed": seed,
        "sizes": resolved,
        "images": {name: {split: len(items) for split, items in by_split.items()} for name, by_split in images.items()},
        "counts": {relative: len(records) for relative, records in files.items()},
        "complete": True,
    }
    writers.write_json(root / MANIFEST, manifest)
    return manifest
