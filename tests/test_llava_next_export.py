"""The llava-next export (app/interop/llava_next_export.py): a tiled tiny model written to the folder that
transformers' LlavaNextForConditionalGeneration and LlavaNextProcessor load offline, giving medzoo's crops, image
token counts, logits and greedy tokens; and the tilings LLaVA-NeXT cannot hold refused in one line."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaNextForConditionalGeneration, LlavaNextProcessor

from medzoo.app.interop.llava_next_export import export_llava_next
from medzoo.core.errors import ExportRefused
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.processor import collate
from medzoo.testing import TINY_MODEL, single_thread

PINPOINTS = [[32, 64], [64, 32], [64, 64]]
SIZES = [(40, 90), (70, 70)]
ATOL = 1e-4


def tiled_model(**options):
    spec = copy.deepcopy(TINY_MODEL)
    spec["vision"]["options"] = {"image_grid_pinpoints": PINPOINTS, **options}
    torch.manual_seed(0)
    return build_model(spec).eval()


def picture(height: int, width: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiled_model()
    with torch.no_grad():
        model.connector.image_newline.mul_(3.0)  # far from any default: it must be the one exported
    directory = tmp_path_factory.mktemp("llava-next") / "export"
    export_llava_next(copy.deepcopy(model), directory)
    hf, info = LlavaNextForConditionalGeneration.from_pretrained(str(directory), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model, directory, hf.eval()


def medzoo_batch(model):
    processor = processor_for(model)
    samples = [processor.encode([Message("user", "<image>\nWhat is shown?")], [picture(*size, seed=i)],
                                add_generation_prompt=True) for i, size in enumerate(SIZES)]
    batch = collate(samples, model.tokenizer.pad_token_id, "left")
    batch.pop("labels")
    return samples, batch


def hf_inputs(samples, batch) -> dict:
    """medzoo's batch as LlavaNext takes it: each image's crops padded to the most crops."""
    most = max(sample.pixel_values.shape[0] for sample in samples)
    pixels = torch.zeros(len(samples), most, *samples[0].pixel_values.shape[1:])
    for row, sample in enumerate(samples):
        pixels[row, : sample.pixel_values.shape[0]] = sample.pixel_values
    return {**batch, "pixel_values": pixels}


def test_the_export_is_llava_next_with_the_grid_and_the_learned_newline(exported):
    model, directory, hf = exported
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "llava_next" and config["image_grid_pinpoints"] == PINPOINTS
    assert json.loads((directory / "medzoo_export.json").read_text())["format"] == "llava-next"
    assert torch.equal(hf.model.image_newline.detach(), model.connector.image_newline.detach())


def test_llava_next_processor_gives_medzoo_crops_and_image_token_counts(exported):
    model, directory, _ = exported
    hf_processor = LlavaNextProcessor.from_pretrained(str(directory), backend="pil")  # the PIL arithmetic
    samples, _ = medzoo_batch(model)
    assert type(hf_processor.image_processor).__name__ == "LlavaNextImageProcessorPil"
    image_token = hf_processor.tokenizer.convert_tokens_to_ids(hf_processor.image_token)
    for i, (size, sample) in enumerate(zip(SIZES, samples, strict=True)):
        theirs = hf_processor(text="<image>\nWhat is shown?", images=picture(*size, seed=i), return_tensors="pt")
        assert torch.equal(theirs["pixel_values"][0], sample.pixel_values)
        assert theirs["image_sizes"][0].tolist() == list(size)
        assert int((theirs["input_ids"] == image_token).sum()) == sample.input_ids.count(model.markup.fill_id)


def test_llava_next_gives_medzoo_logits_and_greedy_tokens(exported):
    model, _, hf = exported
    samples, batch = medzoo_batch(model)
    inputs = hf_inputs(samples, batch)
    settings = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}
    with single_thread(), torch.no_grad():
        torch.testing.assert_close(hf(**inputs).logits, model(**batch).logits, atol=ATOL, rtol=0)
        ours = model.generate(**batch, **settings)
        theirs = hf.generate(**inputs, **settings)[:, batch["input_ids"].shape[1]:]
    assert theirs.tolist() == ours.tolist()


@pytest.mark.parametrize(("options", "reason"), [
    ({"unpad": False}, "llava-next always unpads and adds newline tokens; this model has model.vision.options.unpad: "
                       "false"),
    ({"newline": False}, "llava-next always unpads and adds newline tokens; this model has "
                         "model.vision.options.newline: false"),
    ({"max_image_tokens": 40}, "llava-next has no image-token cap; this model has model.vision.options."
                               "max_image_tokens: 40"),
    ({"image_grid_pinpoints": None}, "llava-next holds tiled models; this one reads fixed-size images"),
])
def test_tilings_llava_next_cannot_hold_are_refused_in_one_line(options, reason, tmp_path):
    with pytest.raises(ExportRefused) as refused:
        export_llava_next(tiled_model(**options), tmp_path / "out")
    assert str(refused.value).startswith(reason) and "\n" not in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_the_cli_exports_a_saved_tiled_model_as_llava_next(tmp_path):
    from click.testing import CliRunner

    from medzoo.app.cli.main import cli

    tiled_model().save_pretrained(str(tmp_path / "model"))
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "model"), "--format", "llava-next",
                                       "-O", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "llava_next"
