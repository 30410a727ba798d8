"""Multiple-choice questions about several images: MedXpertQA-MM's jsonl (five options, images by file name)
and MMMU's validation parquet (Health & Medicine subjects, images embedded in ``image_1`` .. ``image_7``).

A two-image question asks which modalities its images show, in order: the swapped pair is always among the
options, so only both images, each in its place, tell the right option apart. A one-image question asks for its
image's modality; MMMU's twin also has one open question per subject.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from medzoo.app.data_synth.images import SynthImage
from medzoo.core.atomic_writes import write_atomically

LETTERS = "ABCDE"
MODALITY = {"cxr": "chest X-ray", "ct": "CT", "mri": "MRI", "histology": "histology", "colonoscopy": "colonoscopy"}
BODY_SYSTEM = {"cxr": "Respiratory", "ct": "Skeletal", "mri": "Nervous", "histology": "Integumentary",
               "colonoscopy": "Digestive"}  # fmt: skip
#: MMMU's Health & Medicine subjects (its hub configurations)
MMMU_SUBJECTS = ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
                 "Public_Health")  # fmt: skip
MMMU_IMAGE_COLUMNS = tuple(f"image_{n}" for n in range(1, 8))
MMMU_FILE = "validation-00000-of-00001.parquet"


def image_pairs(images: Sequence[SynthImage], rng: np.random.Generator) -> list[tuple[SynthImage, SynthImage]]:
    """About half as many pairs as images, each of two images of different modalities (cycling through each
    modality's images)."""
    by_domain: dict[str, list[SynthImage]] = {}
    for image in images:
        by_domain.setdefault(image.domain, []).append(image)
    domains = sorted(by_domain)
    if len(domains) < 2:
        return []
    used = dict.fromkeys(domains, 0)
    pairs = []
    for _ in range(len(images) // 2):
        first, second = (domains[i] for i in rng.choice(len(domains), 2, replace=False))
        chosen = []
        for domain in (first, second):
            chosen.append(by_domain[domain][used[domain] % len(by_domain[domain])])
            used[domain] += 1
        pairs.append((chosen[0], chosen[1]))
    return pairs


def pair_options(pair: tuple[SynthImage, SynthImage], rng: np.random.Generator) -> tuple[list[str], int]:
    """Five ``X, then Y`` options (the right one, its swap and three other ordered pairs) shuffled, and the right
    option's index."""
    right = (MODALITY[pair[0].domain], MODALITY[pair[1].domain])
    others = [p for p in permutations(sorted(MODALITY.values()), 2) if p not in (right, right[::-1])]
    picked = [others[i] for i in rng.choice(len(others), len(LETTERS) - 2, replace=False)]
    options = [right, right[::-1], *picked]
    order = rng.permutation(len(options))
    texts = [f"{options[i][0]}, then {options[i][1]}" for i in order]
    return texts, int(np.argwhere(order == 0)[0][0])


def medxpertqa_records(
    pairs: Sequence[tuple[SynthImage, SynthImage]], rng: np.random.Generator
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(MM/test.jsonl records, image file name -> the synthetic image's path under ``images/``)."""
    records, files = [], {}
    for index, pair in enumerate(pairs):
        texts, right = pair_options(pair, rng)
        names = [f"MM-{index}-{suffix}.png" for suffix in "ab"]
        files.update({name: image.relative_path for name, image in zip(names, pair, strict=True)})
        records.append({
            "id": f"MM-{index}", "question": "Which imaging modalities do the images show, in order?",
            "options": dict(zip(LETTERS, texts, strict=True)), "label": LETTERS[right], "images": names,
            "medical_task": "Basic Science" if index % 2 else "Diagnosis",
            "body_system": BODY_SYSTEM[pair[0].domain], "question_type": "Understanding",
        })  # fmt: skip
    return records, files


def _image_cell(image: SynthImage, image_dir: Path) -> dict[str, Any]:
    return {"bytes": (image_dir / image.relative_path).read_bytes(), "path": image.relative_path.replace("/", "_")}


def _mmmu_row(subject: str, number: int, question: str, options: list[str], answer: str, images: list[SynthImage],
              image_dir: Path, question_type: str = "multiple-choice") -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"validation_{subject}_{number}", "question": question, "options": repr(options), "explanation": "",
        "img_type": repr([MODALITY[image.domain] for image in images]), "answer": answer,
        "topic_difficulty": "Easy", "question_type": question_type, "subfield": "Imaging",
    }  # fmt: skip
    for position, column in enumerate(MMMU_IMAGE_COLUMNS):
        row[column] = _image_cell(images[position], image_dir) if position < len(images) else None
    return row


def mmmu_rows(
    pairs: Sequence[tuple[SynthImage, SynthImage]], rng: np.random.Generator, image_dir: Path
) -> dict[str, list[dict[str, Any]]]:
    """subject -> validation rows: two-image and one-image questions in turn, and one open question each."""
    rows: dict[str, list[dict[str, Any]]] = {subject: [] for subject in MMMU_SUBJECTS}
    modalities = sorted(MODALITY.values())
    for index, pair in enumerate(pairs):
        subject = MMMU_SUBJECTS[index % len(MMMU_SUBJECTS)]
        number = len(rows[subject]) + 1
        if index % 2 == 0:
            texts, right = pair_options(pair, rng)
            row = _mmmu_row(subject, number, "Which modalities do <image 1> and <image 2> show, in that order?",
                            texts, LETTERS[right], list(pair), image_dir)
        else:
            options = [modalities[i] for i in rng.permutation(len(modalities))]
            row = _mmmu_row(subject, number, "Which modality does <image 1> show?", options,
                            LETTERS[options.index(MODALITY[pair[0].domain])], [pair[0]], image_dir)
        rows[subject].append(row)
    for offset, subject in enumerate(MMMU_SUBJECTS):
        if pairs:
            image = pairs[offset % len(pairs)][1]
            rows[subject].append(_mmmu_row(subject, len(rows[subject]) + 1, "Name the modality of <image 1>.", [],
                                           MODALITY[image.domain], [image], image_dir, "open"))
    return rows


def write_parquet(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """MMMU's parquet layout: image columns as ``struct<bytes: binary, path: string>`` (pyarrow needed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    text = ("id", "question", "options", "explanation")
    rest = ("img_type", "answer", "topic_difficulty", "question_type", "subfield")
    schema = pa.schema([*[(name, pa.string()) for name in text], *[(name, image) for name in MMMU_IMAGE_COLUMNS],
                        *[(name, pa.string()) for name in rest]])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), buffer)
    write_atomically(path, buffer.getvalue())
