"""Importing official-layout and llava-hf checkpoints: medzoo logits equal the source model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from support import official_llava as helpers

from medzoo.app.interop import InteropError
from medzoo.app.interop.llava_import import import_checkpoint
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.multimodal import MultimodalModel

ATOL = 1e-5
QUESTION = [Message("user", "<image>\nIs there an effusion on the left?")]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tower_dir(tmp_path_factory) -> Path:
    torch.manual_seed(11)
    return helpers.save_tower(helpers.tiny_clip(), tmp_path_factory.mktemp("clip-tower"))


def image(width: int = 40, height: int = 28) -> Image.Image:
    pixels = np.random.default_rng(5).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def assert_same_logits(model: MultimodalModel, source, messages=QUESTION) -> None:
    processor = processor_for(model)
    sample = processor.encode(messages, [image()], add_generation_prompt=True)
    with torch.no_grad():
        ours = model(torch.tensor([sample.input_ids]), pixel_values=sample.pixel_values).logits[0]
    if model.markup.kind == "placeholder":
        source_ids = helpers.official_ids(sample.input_ids, model.markup.fill_id)
    else:
        source_ids = sample.input_ids
    theirs = source.logits(source_ids, sample.pixel_values)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


def test_llava_med_v15_sharded_safetensors_with_leftover_fields(tmp_path, tower_dir):
    source = helpers.official_model("mistral", tower_dir=tower_dir)
    checkpoint = source.save(tmp_path / "llava-med-v1.5", max_shard_bytes=40_000)
    assert (checkpoint / "model.safetensors.index.json").is_file()
    assert len(list(checkpoint.glob("model-*.safetensors"))) > 2

    report = import_checkpoint(checkpoint, "llava-med-v1.5", tmp_path / "imported")
    model = MultimodalModel.from_pretrained(str(tmp_path / "imported"))

    assert set(helpers.LEFTOVER_FIELDS) <= set(report.unused_config_fields)
    assert report.vision_source == "checkpoint"
    assert model.spec["vision"] == {"name": "clip", "options": {
        "feature_layer": -2, "feature_select": "patch", "image_aspect": "pad", "pad_greyscale": "grey",
        "pad_offset": "centre", "alpha": "drop", "high_bit_depth": "scale",
    }}
    assert model.spec["connector"]["name"] == "mlp2x_gelu"
    assert model.spec["language"] == {"name": "mistral", "template": "mistral_instruct"}
    assert model.markup.kind == "placeholder"
    assert model.language.model.config.rope_parameters["rope_theta"] == 1e6
    assert list(model.vision.image_mean) == pytest.approx(helpers.TOWER_MEAN)
    assert_same_logits(model, source)

    manifest = json.loads((tmp_path / "imported" / "medzoo_model.json").read_text())
    assert manifest["imported"]["format"] == "llava-med-v1.5"
    recipe = yaml.safe_load((tmp_path / "imported" / "recipe.yaml").read_text())
    assert recipe["model"]["vision"]["pretrained"] == str(tower_dir)
    assert recipe["model"]["language"]["template"] == "mistral_instruct"


def test_recipe_of_an_import_rebuilds_the_model(tmp_path, tower_dir):
    from medzoo.core.model.build import build_model

    source = helpers.official_model("mistral", tower_dir=tower_dir, seed=4)
    import_checkpoint(source.save(tmp_path / "src"), "llava-med-v1.5", tmp_path / "imported")
    recipe = yaml.safe_load((tmp_path / "imported" / "recipe.yaml").read_text())
    rebuilt = build_model(recipe["model"]).eval()
    assert_same_logits(rebuilt, source)


def test_llava_v15_bin_shards_with_index(tmp_path, tower_dir):
    source = helpers.official_model("llama", tower_dir=tower_dir, select_feature="cls_patch", select_layer=-1)
    checkpoint = source.save(tmp_path / "llava-v1.5", as_bin=True)
    assert (checkpoint / "pytorch_model.bin.index.json").is_file()

    import_checkpoint(checkpoint, "llava-v1.5", tmp_path / "imported")
    model = MultimodalModel.from_pretrained(str(tmp_path / "imported"))

    assert model.spec["language"] == {"name": "vicuna", "template": "vicuna_v1"}
    assert model.vision.feature_select == "cls_patch" and model.vision.feature_layer == -1
    assert_same_logits(model, source)


def test_vision_tower_absent_from_checkpoint_is_loaded_from_mm_vision_tower(tmp_path, tower_dir):
    source = helpers.official_model("mistral", tower_dir=tower_dir, seed=2)
    checkpoint = source.save(tmp_path / "no-vision", with_vision=False)

    report = import_checkpoint(checkpoint, "llava-med-v1.5", tmp_path / "imported")

    assert "not in the checkpoint" in report.vision_source
    assert any(str(tower_dir) in note for note in report.notes)
    assert_same_logits(MultimodalModel.from_pretrained(str(tmp_path / "imported")), source)


def test_missing_vision_tower_everywhere_is_an_error(tmp_path):
    source = helpers.official_model("mistral", tower_dir=None)
    source.config["mm_vision_tower"] = str(tmp_path / "nowhere")
    checkpoint = source.save(tmp_path / "no-vision", with_vision=False)
    with pytest.raises(InteropError, match="no vision tower weights") as caught:
        import_checkpoint(checkpoint, "llava-med-v1.5", tmp_path / "imported")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "imported").exists()


def test_vision_tower_override_replaces_an_unreachable_mm_vision_tower(tmp_path, tower_dir):
    source = helpers.official_model("mistral", tower_dir=tower_dir, seed=3)
    source.config["mm_vision_tower"] = "org/not-downloadable"
    checkpoint = source.save(tmp_path / "src")
    import_checkpoint(checkpoint, "llava-med-v1.5", tmp_path / "imported", vision_tower=str(tower_dir))
    assert_same_logits(MultimodalModel.from_pretrained(str(tmp_path / "imported")), source)


def test_unknown_tensor_is_an_error_not_dropped(tmp_path, tower_dir):
    source = helpers.official_model("mistral", tower_dir=tower_dir)
    checkpoint = source.save(tmp_path / "src")
    from safetensors.torch import load_file, save_file

    state = load_file(str(checkpoint / "model.safetensors"))
    save_file({**state, "vision_resampler.weight": torch.zeros(2)}, str(checkpoint / "model.safetensors"))
    with pytest.raises(InteropError, match="1 tensor.*fit no module.*vision_resampler.weight"):
        import_checkpoint(checkpoint, "llava-med-v1.5", tmp_path / "imported")
    save_file({**state, "model.extra_head.weight": torch.zeros(2)}, str(checkpoint / "model.safetensors"))
    with pytest.raises(InteropError, match="language model.*unexpected 1.*model.extra_head.weight"):
        import_checkpoint(checkpoint, "llava-med-v1.5", tmp_path / "imported")


def test_wrong_format_for_model_type_is_an_error(tmp_path, tower_dir):
    checkpoint = helpers.official_model("mistral", tower_dir=tower_dir).save(tmp_path / "src")
    with pytest.raises(InteropError, match="model_type 'llava_mistral' does not fit format 'llava-v1.5'"):
        import_checkpoint(checkpoint, "llava-v1.5", tmp_path / "imported")


def test_pickle_with_code_is_refused(tmp_path, tower_dir):
    checkpoint = helpers.official_model("mistral", tower_dir=tower_dir).save(tmp_path / "src", as_bin=True)
    shard = next(checkpoint.glob("pytorch_model-00001*.bin"))
    torch.save({"model.norm.weight": torch.ones(2), "payload": Path("x")}, shard)
    with pytest.raises(InteropError, match="weights_only=True"):
        import_checkpoint(checkpoint, "llava-med-v1.5", tmp_path / "imported")


def test_cli_import(tmp_path, tower_dir):
    from click.testing import CliRunner

    from medzoo.app.cli.main import cli

    checkpoint = helpers.official_model("mistral", tower_dir=tower_dir).save(tmp_path / "src")
    result = CliRunner().invoke(cli, ["import", str(checkpoint), "--format", "llava-med-v1.5",
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "config fields not used" in result.output and "feature_outs" in result.output
    assert (tmp_path / "out" / "medzoo_model.json").is_file()


def test_import_cached_imports_once(tmp_path, tower_dir):
    from medzoo.app.interop.llava_import import import_cached

    checkpoint = helpers.official_model("mistral", tower_dir=tower_dir).save(tmp_path / "src")
    first = import_cached(str(checkpoint), "llava-med-v1.5", cache_root=tmp_path / "cache")
    stamp = (first / "medzoo_model.json").stat().st_mtime_ns
    second = import_cached(str(checkpoint), "llava-med-v1.5", cache_root=tmp_path / "cache")
    assert second == first and (second / "medzoo_model.json").stat().st_mtime_ns == stamp
    assert MultimodalModel.from_pretrained(str(second)).spec["language"]["template"] == "mistral_instruct"


def test_source_that_is_neither_a_directory_nor_a_hub_id(tmp_path):
    with pytest.raises(InteropError, match="no such directory"):
        import_checkpoint(tmp_path / "missing" / "dir", "llava-med-v1.5", tmp_path / "out")
