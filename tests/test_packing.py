"""Packing: samples packed into shared rows get the logits and losses they get alone (fp32, atol 1e-5), and a
stage with ``packing: true`` trains like the padded stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.processor import collate
from medzoo.core.training.loss import summed_loss
from medzoo.core.training.packing import pack_rows, pack_samples, unpack_rows
from medzoo.testing import TINY_MODEL

ATOL = 1e-5
CONVERSATIONS = [
    ("<image>\nWhat organ is shown?", "The liver."),
    ("Describe the staining pattern of this slide in some detail, please.\n<image>",
     "Diffuse nuclear staining with a few clusters of strongly positive cells near the margin."),
    ("Is there a fracture?", "No."),
    ("<image>\nWhich modality was used?", "A computed tomography scan of the chest, axial plane."),
    ("<image>\nYes or no: is the lesion enhancing?", "Yes."),
]


def test_pack_rows_first_fit_decreasing():
    rows = pack_rows([5, 3, 8, 2, 6, 1], capacity=10)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(sum([5, 3, 8, 2, 6, 1][i] for i in row) <= 10 for row in rows)
    assert rows == [[2, 3], [1, 4, 5], [0]]
    assert pack_rows([12, 4], capacity=10) == [[0], [1]]


@pytest.fixture(scope="module")
def model_and_samples():
    torch.manual_seed(0)
    model = build_model(TINY_MODEL).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    processor = processor_for(model)
    rng = np.random.default_rng(0)
    samples = []
    for question, answer in CONVERSATIONS:
        images = [Image.fromarray(rng.integers(0, 255, (32, 40, 3), np.uint8))] if "<image>" in question else []
        samples.append(processor.encode([Message("user", question), Message("assistant", answer)], images))
    return model, samples


def test_packed_rows_give_the_logits_of_each_sample_alone(model_and_samples):
    model, samples = model_and_samples
    lengths = [len(s) for s in samples]
    capacity = sorted(lengths)[-1] + sorted(lengths)[0]
    packed = pack_samples(samples, model.tokenizer.pad_token_id, capacity)
    assert packed["input_ids"].shape[0] < len(samples), "some rows should hold several samples"
    assert "attention_mask" not in packed
    with torch.no_grad():
        logits = model(**{k: v for k, v in packed.items() if k != "labels"}, use_cache=False).logits
        pieces = unpack_rows(logits, lengths, capacity)
        for sample, piece in zip(samples, pieces, strict=True):
            alone = collate([sample], model.tokenizer.pad_token_id)
            alone.pop("labels")
            torch.testing.assert_close(piece, model(**alone).logits[0], atol=ATOL, rtol=0)


def test_packed_loss_equals_sum_of_per_sample_losses(model_and_samples):
    model, samples = model_and_samples
    pad = model.tokenizer.pad_token_id
    lengths = [len(s) for s in samples]
    with torch.no_grad():
        alone = [summed_loss(model, collate([s], pad)) for s in samples]
        packed = summed_loss(model, pack_samples(samples, pad, max(lengths) * 2))
        padded = summed_loss(model, collate(samples, pad))
    assert all(torch.isfinite(value) and value > 0 for value in alone)
    torch.testing.assert_close(packed, torch.stack(alone).sum(), atol=ATOL * len(samples) * 10, rtol=1e-6)
    torch.testing.assert_close(padded, torch.stack(alone).sum(), atol=ATOL * len(samples) * 10, rtol=1e-6)


def test_pack_samples_layout(model_and_samples):
    model, samples = model_and_samples
    pad = model.tokenizer.pad_token_id
    batch = pack_samples(samples, pad, 10_000)
    assert batch["input_ids"].shape == (1, sum(len(s) for s in samples))
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == len(samples) and starts[0] == 0
    assert all(batch["labels"][0, start] == -100 for start in starts)
    assert batch["pixel_values"].shape[0] == sum(s.pixel_values is not None for s in samples)


def _stage(data, packing: bool) -> dict:
    return {
        "name": "instruct", "role": "instruct",
        "datasets": [{"name": "med-vqa", "path": str(data), "image_root": str(data.parent / "images"),
                      "options": {"split": "all"}}],
        "tuning": {"vision": "frozen", "connector": "full", "language": "full"}, "optimizer": {"lr": 1e-3},
        "max_steps": 3, "global_batch_size": 8, "micro_batch_size": 4, "max_length": 128, "precision": "fp32",
        "seed": 3, "packing": packing, "schedule": {"warmup_ratio": 0.0},
    }


def test_packed_stage_trains_like_the_padded_stage(tmp_path):
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.run import train_recipe

    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i in range(16):
        Image.new("RGB", (32, 32), (40 * (i % 6), 90, 200 - 10 * i)).save(images / f"{i}.png")
        records.append({"id": f"r{i}", "image": f"{i}.png", "answer_type": "OPEN", "question_type": "x",
                        "conversations": [{"from": "human", "value": "<image>\n" + "Which colour? " * (1 + i % 4)},
                                          {"from": "gpt", "value": "A colour " + "and more " * (i % 5)}]})
    data = tmp_path / "train.json"
    data.write_text(json.dumps(records))
    losses = {}
    for packing in (False, True):
        recipe = {"name": "pack", "model": TINY_MODEL, "stages": [_stage(data, packing)]}
        path = tmp_path / f"recipe-{packing}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        run = tmp_path / f"run-{packing}"
        train_recipe(load_recipe(str(path)).config, run, echo=lambda *_: None)
        lines = (run / "01-instruct" / "metrics.jsonl").read_text().splitlines()
        losses[packing] = [json.loads(line)["loss"] for line in lines]
    assert len(losses[True]) == 3
    np.testing.assert_allclose(losses[True], losses[False], atol=1e-4, rtol=0)
