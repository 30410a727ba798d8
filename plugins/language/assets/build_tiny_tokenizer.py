"""Build the tiny Llama-style tokenizer medzoo ships (``assets/tiny-tokenizer``), deterministically.

The tokenizer is a sentencepiece-like BPE (Metaspace pre-tokenization, ``▁`` marks a word start) with byte
fallback, so any text round-trips. The layout matches Llama's: ``<unk>``=0, ``<s>``=1, ``</s>``=2, the 256 byte
pieces ``<0x00>``..``<0xFF>`` at ids 3..258, then the learned pieces; the multimodal and padding tokens follow
as added special tokens. The corpus is written below (no downloads); the same code always yields the same
files.

Each family variant (``medzoo.plugins.language.tiny_tokenizer_families``) is the same tokenizer with that family's
special tokens appended, its BOS/EOS behaviour and its chat template (kept in ``tokenizer_config.json``), in
``tiny-tokenizer-<family>``; the Qwen variants are byte-level BPE learned from the same corpus (Qwen's
pre-tokenizer regex, ``Qwen2Tokenizer``: transformers rebuilds a Qwen2 checkpoint's tokenizer that way). Run ``python plugins/language/assets/build_tiny_tokenizer.py [ASSETS_DIR]`` to
regenerate every folder.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

BASE_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
ADDED_SPECIAL_TOKENS = ("<image>", "<im_start>", "<im_end>", "<im_patch>", "<pad>")
PAD_TOKEN = "<pad>"
MAX_VOCAB_SIZE = 1536  # cap on base specials + byte pieces + learned pieces (the corpus yields fewer)
WORD_START = "▁"
ASSETS = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ASSETS / "tiny-tokenizer"

TEMPLATE_LINES = (
    "[INST] <image>\nWhat does this image show? [/INST] A chest radiograph. </s>",
    "[INST] Is there a polyp? [/INST] Yes, there is a polyp in the lower left. </s>",
    "### Human: <image>\nDescribe the figure.\n### Assistant: A histology tile stained with H&E.\n###",
    "### Human: Which organ is shown?\n### Assistant: The liver.\n###",
    "USER: <image>\nWhat is the modality? ASSISTANT: CT</s>",
    "USER: Is the effusion present? ASSISTANT: No.</s>",
    "<<SYS>>\nYou are a helpful medical imaging assistant.\n<</SYS>>\n\n",
    "A chat between a curious user and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
)

MODALITIES = ("chest radiograph", "chest X-ray", "CT scan", "MRI", "ultrasound", "PET", "mammogram",
              "histology slide", "colonoscopy frame", "endoscopy image", "fundus photograph", "dermoscopy image")
ORGANS = ("lung", "lungs", "heart", "liver", "kidney", "brain", "spleen", "pancreas", "colon", "rectum",
          "stomach", "bladder", "prostate", "breast", "bone", "spine", "chest", "abdomen", "pelvis", "skull")
FINDINGS = ("opacity", "effusion", "pneumothorax", "consolidation", "nodule", "mass", "lesion", "tumor",
            "polyp", "adenoma", "carcinoma", "cyst", "edema", "hemorrhage", "fracture", "cardiomegaly",
            "atelectasis", "infiltrate", "inflammation", "ulcer", "metastasis", "calcification", "stenosis")
SIDES = ("left", "right", "bilateral", "upper", "lower", "middle", "anterior", "posterior", "medial", "lateral")
STAINS = ("H&E", "hematoxylin and eosin", "immunohistochemistry", "Ki-67", "PAS", "trichrome")
CELLS = ("nuclei", "cells", "lymphocytes", "neutrophils", "macrophages", "epithelium", "glands", "stroma",
         "mitoses", "fibroblasts", "tissue", "mucosa", "crypts", "vessels")
SIZES = ("small", "large", "medium", "enlarged", "irregular", "round", "oval", "dense", "pleomorphic")
POLYP_WORDS = ("sessile", "pedunculated", "hyperplastic", "serrated", "adenomatous", "flat", "bleeding",
               "diverticulum", "ulcerative colitis", "Crohn's disease", "bounding box", "coordinates")
QUESTIONS = (
    "What does this image show?", "Is there any abnormality?", "Which organ is shown?",
    "What is the modality of this image?", "Is the {finding} on the {side} side?", "Where is the {finding}?",
    "How many {cells} are visible?", "Describe the figure in detail.", "Is this a normal {organ}?",
    "What stain was used?", "Can you locate the polyp?", "Does the patient have {finding}?",
)
ANSWERS = (
    "Yes.", "No.", "yes", "no", "The {finding} is in the {side} {organ}.", "This is a {modality} of the {organ}.",
    "There are {number} {size} {cells}.", "The image shows a {size} {finding} in the {side} {organ}.",
    "The stain is {stain}.", "The polyp is at [{x1}, {y1}, {x2}, {y2}].", "No {finding} is seen.",
)
CAPTIONS = (
    "Figure {number}: {modality} of the {organ} showing a {size} {finding} ({side}).",
    "Fig. {number}. {stain} staining of {organ} tissue; {cells} are {size} (scale bar, {number} um).",
    "Axial {modality} demonstrates a {finding} measuring {number}.{digit} cm in the {side} {organ}.",
    "Colonoscopy reveals a {size} polyp, {number} mm, in the {side} colon; biopsy confirmed {finding}.",
    "Panel (a) shows the {organ}; panel (b) shows {cells} at {number}x magnification.",
)
EXTRA_WORDS = (
    "patient", "patients", "diagnosis", "clinical", "radiology", "pathology", "biomedical", "medical",
    "imaging", "image", "images", "figure", "caption", "scan", "slice", "axial", "coronal", "sagittal",
    "contrast", "enhanced", "arrow", "arrows", "normal", "abnormal", "benign", "malignant", "grade",
    "biopsy", "specimen", "magnification", "resolution", "pixel", "region", "finding", "findings",
    "question", "answer", "describe", "shows", "showing", "visible", "present", "absent", "evidence",
    "suggests", "consistent", "with", "without", "and", "or", "the", "of", "in", "on", "is", "are", "a",
    "an", "this", "that", "there", "what", "which", "where", "how", "many", "does", "can", "you", "see",
)
PUNCTUATION_LINE = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ 0123456789 3.5 12% (n=42) 1:1000 x2 10mm 64x64 0.05"


def corpus_lines() -> list[str]:
    """The fixed training corpus: template markers, medical vocabulary, questions, answers and captions."""
    lines: list[str] = list(TEMPLATE_LINES) + [PUNCTUATION_LINE, " ".join(EXTRA_WORDS)]
    lines += [" ".join(group) for group in (MODALITIES, ORGANS, FINDINGS, SIDES, STAINS, CELLS, SIZES, POLYP_WORDS)]
    lines += [str(number) for number in range(0, 1001, 7)]
    slots = itertools.product(range(len(FINDINGS)), range(len(ORGANS)))
    for index, (finding_index, organ_index) in enumerate(slots):
        values = {
            "finding": FINDINGS[finding_index],
            "organ": ORGANS[organ_index],
            "side": SIDES[index % len(SIDES)],
            "cells": CELLS[index % len(CELLS)],
            "size": SIZES[index % len(SIZES)],
            "modality": MODALITIES[index % len(MODALITIES)],
            "stain": STAINS[index % len(STAINS)],
            "number": str(index % 97 + 1),
            "digit": str(index % 10),
            "x1": str(index % 61), "y1": str(index % 53), "x2": str(index % 61 + 3), "y2": str(index % 53 + 5),
        }
        lines.append(QUESTIONS[index % len(QUESTIONS)].format(**values))
        lines.append(ANSWERS[index % len(ANSWERS)].format(**values))
        lines.append(CAPTIONS[index % len(CAPTIONS)].format(**values))
        lines.append(TEMPLATE_LINES[index % 6])
    return lines


def byte_pieces() -> list[str]:
    return [f"<0x{value:02X}>" for value in range(256)]


def train_pieces(lines: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn BPE pieces within words (merges never cross a word start) and lay out the Llama-style vocab."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    reserved = len(BASE_SPECIAL_TOKENS) + 256
    learner = Tokenizer(models.BPE(unk_token="<unk>"))
    learner.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True)
    alphabet = sorted({chr(code) for code in range(32, 127)} | {WORD_START, "\n"})
    trainer = trainers.BpeTrainer(
        vocab_size=MAX_VOCAB_SIZE - reserved,
        min_frequency=2,
        initial_alphabet=alphabet,
        special_tokens=[],
        show_progress=False,
    )
    learner.train_from_iterator(lines, trainer=trainer)
    learned = json.loads(learner.to_str())["model"]
    vocab: dict[str, int] = {token: index for index, token in enumerate(BASE_SPECIAL_TOKENS)}
    for piece in byte_pieces():
        vocab[piece] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda item: item[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in learned["merges"]]
    return vocab, merges


def train_byte_level_pieces(lines: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn byte-level BPE pieces the way Qwen's tokenizer splits text (its regex, then bytes as characters)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=MAX_VOCAB_SIZE,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    learner.train_from_iterator(lines, trainer=trainer)
    learned = json.loads(learner.to_str())["model"]
    vocab = dict(sorted(learned["vocab"].items(), key=lambda item: item[1]))
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in learned["merges"]]
    return vocab, merges


def build_byte_level(output: Path, family, pieces=None) -> Path:
    """A Qwen-style variant: byte-level BPE (``Qwen2Tokenizer``), no BOS, ``<|endoftext|>`` as padding."""
    from transformers import Qwen2Tokenizer

    vocab, merges = pieces or train_byte_level_pieces(corpus_lines())
    extra = [token for token in ADDED_SPECIAL_TOKENS if token != PAD_TOKEN]
    extra += [token for token in family.special_tokens if token not in extra]
    tokenizer = Qwen2Tokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token=None,
        bos_token=None,
        eos_token=family.eos_token,
        pad_token=family.pad_token,
        extra_special_tokens=extra,
        padding_side="right",
        model_max_length=2048,
    )
    return _finish(tokenizer, output, family)


def _finish(tokenizer, output: Path, family) -> Path:
    if family is not None:
        if family.added_tokens:
            tokenizer.add_tokens(list(family.added_tokens))
        if family.chat_template is not None:
            tokenizer.chat_template = family.chat_template
    output.mkdir(parents=True, exist_ok=True)
    # the chat template stays inside tokenizer_config.json (JSON ships as package data; .jinja would not)
    tokenizer.save_pretrained(str(output), save_jinja_files=False)
    return output


def build(output: Path = DEFAULT_OUTPUT, family=None, pieces=None) -> Path:
    """Train (or reuse ``pieces``) and write the tokenizer files (``tokenizer.json``, ``tokenizer_config.json``)
    into ``output``: the base tokenizer, or a ``TinyTokenizerFamily`` of it."""
    from transformers import LlamaTokenizerFast

    vocab, merges = pieces or train_pieces(corpus_lines())
    extra = [token for token in ADDED_SPECIAL_TOKENS if token != PAD_TOKEN]
    options = {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True}
    if family is not None:
        extra += [token for token in family.special_tokens if token not in extra]
        options = {"bos_token": family.bos_token, "eos_token": family.eos_token,
                   "add_bos_token": family.add_bos_token}
    tokenizer = LlamaTokenizerFast(
        vocab=vocab,
        merges=merges,
        unk_token="<unk>",
        pad_token=PAD_TOKEN,
        add_eos_token=False,
        extra_special_tokens=extra,
        padding_side="right",
        model_max_length=2048,
        **options,
    )
    return _finish(tokenizer, output, family)


def build_all(assets: Path = ASSETS) -> list[Path]:
    """Write the base tokenizer and every family variant under ``assets`` (the pieces are learned once)."""
    from medzoo.plugins.language.tiny_tokenizer_families import TOKENIZER_FAMILIES

    lines = corpus_lines()
    pieces, byte_pieces = train_pieces(lines), train_byte_level_pieces(lines)
    written = [build(assets / "tiny-tokenizer", pieces=pieces)]
    for name, family in TOKENIZER_FAMILIES.items():
        folder = assets / f"tiny-tokenizer-{name}"
        if family.byte_level:
            written.append(build_byte_level(folder, family, byte_pieces))
        else:
            written.append(build(folder, family, pieces))
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ASSETS
    for folder in build_all(target):
        print(f"wrote {folder}")
