"""S2-style multi-scale features (core/model/multiscale.py): shapes, the connector's width following, each
scale's channels equal to the s2wrapper recipe computed by hand (bzhangGo/s2wrapper ``multiscale_forward``: bicubic
resize, chessboard split into tower-sized tiles, merge, area-pool to the base grid, concatenate channels), a
training step, saving and loading, and bad values refused in one line."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from medzoo.core.errors import RecipeError
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import collate
from medzoo.testing import TINY_MODEL, single_thread


def spec(**options) -> dict:
    model = copy.deepcopy(TINY_MODEL)
    model["vision"]["options"] = {"multiscale": [1, 2], **options}
    return model


@pytest.fixture(scope="module")
def model() -> MultimodalModel:
    torch.manual_seed(0)
    return build_model(spec()).eval()


def picture(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_the_connector_takes_every_scale_and_the_processor_reads_the_largest(model):
    tower = model.vision
    assert model.connector.vision_dim == 2 * tower.hidden_size
    assert model.image_transform.size == 2 * tower.image_size and model.num_image_tokens == tower.num_tokens
    sample = processor_for(model).encode([Message("user", "<image>\nQ?")], [picture(50, 80)])
    assert sample.pixel_values.shape == (1, 3, 64, 64)
    assert sample.input_ids.count(model.markup.fill_id) == tower.num_tokens


def test_each_scales_channels_are_the_s2_recipe(model):
    from medzoo.core.model.multiscale import multiscale_features

    tower, size, width = model.vision, model.vision.image_size, model.vision.hidden_size
    pixels = torch.randn(2, 3, 2 * size, 2 * size)
    with torch.no_grad():
        features = multiscale_features(tower, pixels, (1, 2), 4)
        assert features.shape == (2, 16, 2 * width)
        small = F.interpolate(pixels, size=(size, size), mode="bicubic")
        torch.testing.assert_close(features[..., :width], tower(small), rtol=0, atol=0)
        grid = torch.zeros(2, width, 8, 8)
        for row in range(2):
            for column in range(2):
                tile = pixels[:, :, row * size : (row + 1) * size, column * size : (column + 1) * size]
                grid[:, :, row * 4 : (row + 1) * 4, column * 4 : (column + 1) * 4] = (
                    tower(tile).transpose(1, 2).reshape(2, width, 4, 4))
        pooled = F.avg_pool2d(grid, 2).flatten(2).transpose(1, 2)
        torch.testing.assert_close(features[..., width:], pooled, rtol=1e-5, atol=1e-6)


def test_a_multiscale_model_trains_a_step_and_saves_and_loads_with_identical_logits(model, tmp_path):
    trained = copy.deepcopy(model).train()
    processor = processor_for(trained)
    samples = [processor.encode([Message("user", "<image>\nQ?"), Message("assistant", f"A{i}.")],
                                [picture(40 + 30 * i, 70, seed=i)]) for i in range(2)]
    batch = collate(samples, trained.tokenizer.pad_token_id)
    optimizer = torch.optim.SGD(trained.connector.parameters(), lr=0.1)
    with single_thread():
        loss = trained(**batch).loss
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss) and next(trained.connector.parameters()).grad.abs().sum() > 0
    trained.eval().save_pretrained(str(tmp_path / "m"))
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "m"))
    assert loaded.scales == (1, 2) and loaded.connector.vision_dim == 2 * loaded.vision.hidden_size
    with torch.no_grad():
        assert torch.equal(trained(**batch).logits, loaded(**batch).logits)


@pytest.mark.parametrize(("options", "message"), [
    ({"multiscale": [2, 1]}, "model.vision.options.multiscale: [2, 1]; expected a list of distinct positive integers "
                             "in increasing order"),
    ({"multiscale": [0, 1]}, "model.vision.options.multiscale: [0, 1]; expected"),
    ({"multiscale": "s2"}, "model.vision.options.multiscale: 's2'; expected"),
    ({"image_grid_pinpoints": [[32, 64]]}, "model.vision.options.multiscale: [1, 2] together with "
                                           "image_grid_pinpoints"),
    ({"feature_select": "cls_patch"}, "model.vision.options.multiscale: [1, 2]: multi-scale features pool the "
                                      "tower's square patch grid, but it gives 17 tokens per picture"),
])
def test_bad_scales_are_refused_in_one_line_before_the_language_model_loads(options, message, monkeypatch):
    from medzoo.core.model import build

    built = []
    real = build.build_component
    monkeypatch.setattr(build, "build_component", lambda kind, *a, **k: built.append(kind) or real(kind, *a, **k))
    with pytest.raises(RecipeError) as refused:
        build_model(spec(**options))
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert built == ["vision_encoder"]


def test_the_hf_llava_export_refuses_multiscale_features_in_one_line(model, tmp_path):
    from medzoo.app.interop.hf_llava_export import ExportRefused, export_hf_llava

    with pytest.raises(ExportRefused, match=r"^hf-llava cannot hold multi-scale features \(model.vision.options."
                                            r"multiscale: \[1, 2\]\)"):
        export_hf_llava(copy.deepcopy(model), tmp_path / "out")
    assert not (tmp_path / "out").exists()
