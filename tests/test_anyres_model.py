"""Dynamic-resolution tiling wired into the model (core/model/anyres.py): the processor's crops, the model's
LLaVA-NeXT feature layout (unpadding, newline, token cap), batches of images with different token counts in
training and in the inference engine, saving and loading, and the recipe's bad values refused in one line."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from medzoo.core.errors import RecipeError
from medzoo.core.inference import InferenceEngine, processor_for
from medzoo.core.inference.requests import ChatRequest
from medzoo.core.inference.settings import SamplingSettings
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.anyres import Tiling, image_features
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import ImageTokenMismatch, MultimodalModel
from medzoo.core.model.processor import collate
from medzoo.core.model.tiling import image_token_count
from medzoo.testing import TINY_MODEL, single_thread

#: the tiny CLIP tower reads 32-px crops into 4 x 4 = 16 tokens
PINPOINTS = [[32, 64], [64, 32], [64, 64]]
#: image sizes (height, width) tiling into different grids, so different token counts
SIZES = [(40, 90), (70, 70), (90, 30)]


def spec(**options) -> dict:
    model = copy.deepcopy(TINY_MODEL)
    model["vision"]["options"] = {"image_grid_pinpoints": PINPOINTS, **options}
    return model


def picture(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiled() -> MultimodalModel:
    torch.manual_seed(0)
    return build_model(spec())


def samples(model: MultimodalModel, sizes=SIZES):
    processor = processor_for(model)
    return [processor.encode([Message("user", "<image>\nWhat is shown?"), Message("assistant", f"Picture {i}.")],
                             [picture(*size, seed=i)]) for i, size in enumerate(sizes)]


def test_each_image_becomes_its_thumbnail_and_crops_and_sizes_its_placeholder_run(tiled):
    encoded = samples(tiled)
    for sample, size in zip(encoded, SIZES, strict=True):
        assert sample.image_sizes == [size]
        crops = 1 + tiled.tiling.crop_count(size) - 1
        assert sample.pixel_values.shape == (crops, 3, 32, 32)
        expected = image_token_count(size, PINPOINTS, 32, 4)  # unpadding and newline on (the defaults)
        assert sample.input_ids.count(tiled.markup.fill_id) == expected == tiled.image_token_count(size)
    assert len({sample.input_ids.count(tiled.markup.fill_id) for sample in encoded}) == len(SIZES)


def test_a_batch_of_images_with_different_token_counts_trains_a_step(tiled):
    model = copy.deepcopy(tiled).train()
    batch = collate(samples(model), model.tokenizer.pad_token_id)
    assert batch["image_sizes"].tolist() == [list(size) for size in SIZES]
    with single_thread():
        loss = model(**batch).loss
        loss.backward()
    assert torch.isfinite(loss)
    assert model.connector.image_newline.grad.abs().sum() > 0  # the newline feature is learned
    assert all(p.grad is not None for p in model.connector.parameters())


def test_features_follow_llava_next_layout_row_by_row_with_newlines_and_unpadding():
    """The grid is read row by row over the crops (transformers' ``pack_image_features`` permute), rows or
    columns of padding removed, a newline after each row, the thumbnail first."""
    tiling = Tiling(((32, 64),), 32, 2, None, True, True)
    # a wide image (16 x 64) on a 32 x 64 canvas: grid 2 x 4 features, 1 row of padding top and bottom
    features = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 4, 1)  # thumbnail, left crop, right crop
    newline = torch.tensor([-1.0])
    out = image_features(tiling, features, (16, 64), newline).flatten().tolist()
    # crop tokens are 2 x 2 each: left crop 4..7 = [[4, 5], [6, 7]], right crop 8..11 = [[8, 9], [10, 11]], so
    # the grid rows are [4, 5, 8, 9] and [6, 7, 10, 11]; unpadding would keep int(round(16 * 4 / 64)) = 1 row,
    # but removes padding in pairs: 2 - (2 - 1) // 2 * 2 = 2 rows stay
    assert out == [0, 1, 2, 3, 4, 5, 8, 9, -1, 6, 7, 10, 11, -1]
    tall = Tiling(((64, 32),), 32, 2, None, True, False)
    # a 64 x 8 image on a 64 x 32 canvas: grid 4 x 2, int(round(8 * 4 / 64)) = 0 columns -> 2 - 2 = 0 kept
    assert image_features(tall, features, (64, 8), None).shape == (4, 1)
    wide = Tiling(((32, 64),), 32, 2, None, True, False)
    assert image_features(wide, features, (8, 64), None).flatten().tolist() == [0, 1, 2, 3]  # both rows padding


def test_the_token_cap_shrinks_the_grid_and_counts_agree():
    tiling = Tiling(((64, 64),), 32, 4, 40, False, True)
    features = torch.randn(5, 16, 8)
    out = image_features(tiling, features, (64, 64), torch.zeros(8))
    assert out.shape[0] == tiling.token_count((64, 64)) <= 40
    uncapped = Tiling(((64, 64),), 32, 4, None, False, True)
    assert uncapped.token_count((64, 64)) == 16 + 8 * 9 > 40
    assert Tiling(((64, 64),), 32, 4, 16, False, True).token_count((64, 64)) == 16  # thumbnail only


def test_save_and_load_give_identical_logits_and_the_newline(tiled, tmp_path):
    model = copy.deepcopy(tiled)
    with torch.no_grad():
        model.connector.image_newline.add_(1.0)  # not the initial value: the saved one must come back
    model.save_pretrained(str(tmp_path / "m"))
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "m"))
    batch = collate(samples(model), model.tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.equal(model.eval()(**batch).logits, loaded(**batch).logits)
    assert torch.equal(loaded.connector.image_newline, model.connector.image_newline)
    assert loaded.tiling == model.tiling


def test_the_engine_batches_images_of_different_token_counts_as_it_answers_them_alone(tiled):
    """Left-padded rows of different image-token counts give each row the logits it gets alone, and the
    engine answers such a batch."""
    model = copy.deepcopy(tiled).eval()
    engine = InferenceEngine(model)
    requests = [ChatRequest([Message("user", "<image>\nDescribe.")], picture(*size, seed=i))
                for i, size in enumerate(SIZES)]
    prompts = [engine.encode(request.messages, request.images) for request in requests]
    batch = collate(prompts, model.tokenizer.pad_token_id, "left")
    batch.pop("labels")
    with single_thread(), torch.no_grad():
        together = model(**batch).logits[:, -1]
        for row, prompt in enumerate(prompts):
            alone = collate([prompt], model.tokenizer.pad_token_id, "left")
            alone.pop("labels")
            torch.testing.assert_close(together[row], model(**alone).logits[0, -1], rtol=1e-4, atol=1e-4)
        answers = engine.answer(requests, SamplingSettings(max_new_tokens=3), batch_size=3)
    assert [answer.prompt_tokens for answer in answers] == [len(prompt) for prompt in prompts]
    assert all(answer.completion_tokens >= 1 for answer in answers)


def test_tiled_images_without_their_sizes_are_refused(tiled):
    batch = collate(samples(tiled), tiled.tokenizer.pad_token_id)
    batch.pop("image_sizes")
    with pytest.raises(ImageTokenMismatch, match="tiled images need image_sizes"):
        tiled(**batch)


@pytest.mark.parametrize(("options", "message"), [
    ({"image_grid_pinpoints": [[32, 48]]},
     "model.vision.options.image_grid_pinpoints[0]: [32, 48]: 48 is not a positive multiple of the tower's 32-px "
     "crops"),
    ({"max_image_tokens": 15},
     "model.vision.options.max_image_tokens: 15 is below one crop's 16 image tokens; expected an integer >= 16"),
    ({"unpad": "yes"}, "model.vision.options.unpad: 'yes'; expected true or false"),
    ({"image_grid_pinpoints": None, "max_image_tokens": 100},
     "model.vision.options.max_image_tokens: 100 without image_grid_pinpoints"),
    ({"feature_select": "cls_patch"},
     "model.vision.options.image_grid_pinpoints: tiling lays each crop's image tokens out as a square grid, but the "
     "tower and connector give 17 per crop"),
])
def test_bad_tiling_options_are_refused_in_one_line(options, message):
    with pytest.raises(RecipeError) as refused:
        build_model(spec(**options))
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_bad_grid_is_refused_before_the_language_model_loads(monkeypatch):
    from medzoo.core.model import build

    built = []
    real = build.build_component
    monkeypatch.setattr(build, "build_component", lambda kind, *a, **k: built.append(kind) or real(kind, *a, **k))
    with pytest.raises(RecipeError, match=r"image_grid_pinpoints\[0\]"):
        build_model(spec(image_grid_pinpoints=[[30, 30]]))
    assert built == ["vision_encoder"]


def test_a_tiled_recipe_trains_through_the_run_and_logs_its_image_tokens(tmp_path):
    from support.tiny_run import logged, train

    run, _ = train(tmp_path, f"model.vision.options={{image_grid_pinpoints: {PINPOINTS}}}",
                   "stages.alignment.max_steps=1", "stages.instruct.max_steps=1")
    model = MultimodalModel.from_pretrained(str(run / "final"))
    assert model.tiling is not None and hasattr(model.connector, "image_newline")
    # 32 x 32 squares tile onto 32 x 64 (the first best fit): thumbnail 16 + unpadded 4 x 4 + 4 newlines
    per_image = image_token_count((32, 32), PINPOINTS, 32, 4)
    assert [record["image_tokens"] for record in logged(run)] == [4 * per_image, 4 * per_image]


def test_the_hf_llava_export_refuses_a_tiled_model_in_one_line(tiled, tmp_path):
    from medzoo.app.interop.hf_llava_export import ExportRefused, export_hf_llava

    with pytest.raises(ExportRefused, match=r"^hf-llava cannot hold tiled images \(model.vision.options.image_grid_"
                                            r"pinpoints\).*export as llava-next$"):
        export_hf_llava(copy.deepcopy(tiled), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_anyres_recipe_shrinks_its_grid_to_the_tiny_towers_crops(monkeypatch):
    """LLaVA-NeXT's pinpoints in 336-px crops become the same shapes in the tiny tower's crops under shrink."""
    from medzoo.core.recipes.loading import load_recipe

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = load_recipe("llava-med-v1.5-anyres", ["shrink=true"]).config
    assert config.model.vision.options.image_grid_pinpoints[2] == [672, 672]
    model = build_model(config.model, shrink=True)
    crop = model.vision.image_size
    assert model.tiling.pinpoints == ((crop, 2 * crop), (2 * crop, crop), (2 * crop, 2 * crop), (3 * crop, crop),
                                      (crop, 3 * crop))
    assert model.spec["vision"]["options"]["image_grid_pinpoints"][0] == [crop, 2 * crop]  # saved as built


def test_packed_rows_carry_each_images_size_in_the_order_of_its_pixels(tiled):
    from medzoo.core.training.packing import pack_rows, pack_samples

    encoded = samples(tiled)
    capacity = max(len(sample) for sample in encoded) + 40
    batch = pack_samples(encoded, tiled.tokenizer.pad_token_id, capacity)
    order = [index for row in pack_rows([len(sample) for sample in encoded], capacity) for index in row]
    assert batch["image_sizes"].tolist() == [list(SIZES[index]) for index in order]
    assert torch.equal(batch["pixel_values"], torch.cat([encoded[index].pixel_values for index in order]))
    with torch.no_grad():
        assert torch.isfinite(tiled(**batch).loss)
