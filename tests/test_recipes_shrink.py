"""Every shipped recipe under ``-o shrink=true``: the same component types, tiny and random, a forward pass, and
for the paper's recipes one optimizer step per stage on a synthetic set laid out under the real LLaVA-Med file
names (only ``data.root`` changes), with the recipe's own precision, tuning and gradient checkpointing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import collate
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.loading import load_recipe
from medzoo.core.resources import recipes_dir

RECIPES = sorted(path.stem for path in recipes_dir().glob("*.yaml"))
PAPER_RECIPES = ["llava-med-v1.0", "llava-med-v1.5", "llava-med-v1.5-lora", "llava-med-biomedclip"]
#: recipes of the zoo's other models, trained one step per stage like the paper's
ZOO_RECIPES = ["colongpt", "llava-med-llama3", "llava-med-qwen2.5-0.5b", "llava-med-v1.5-anyres"]
#: recipes adding a stage beyond supervised tuning, trained one step per stage in tests/test_objective_recipes.py
OBJECTIVE_RECIPES = ["llava-med-v1.5-dpo", "colongpt-grpo"]
#: where the official LLaVA-Med and ColonINST data put their files (relative to data.root), and the synthetic
#: file standing in
REAL_LAYOUT = {
    "alignment/llava_med_alignment_500k.json": "llava_med/alignment.json",
    "instruct/llava_med_instruct_60k_inline_mention.json": "llava_med/instruct.json",
    "Json-file/train/ColonINST-train-cap.json": "coloninst/train/cls_train.json",
    "Json-file/train/ColonINST-train-3tasks.json": "coloninst/train/reg_train.json",
}
#: image folders of the official layouts (relative to data.root) standing in for the synthetic images/
REAL_IMAGE_FOLDERS = ("Positive-images",)
#: one optimizer step of two samples; no warmup (a one-step warmup would take that step at lr 0)
SMALL_STAGE = ["max_steps=1", "global_batch_size=2", "micro_batch_size=2", "max_length=160", "schedule.warmup_ratio=0"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from medzoo.app.data_synth.generate import synthesize

    root = tmp_path_factory.mktemp("llava-med-data")
    synthesize(root, seed=2, sizes={"train": 10, "val": 0, "test": 0})
    for real, synthetic in REAL_LAYOUT.items():
        (root / real).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / synthetic, root / real)
    for folder in REAL_IMAGE_FOLDERS:
        shutil.copytree(root / "images", root / folder)
    return root


def shrunk(name: str, data_root: Path) -> object:
    overrides = ["shrink=true", f"data.root={data_root}"]
    config = load_recipe(name, overrides).config
    for stage in config.stages:
        overrides += [f"stages.{stage.name}.{setting}" for setting in SMALL_STAGE]
    return load_recipe(name, overrides).config


def test_every_recipe_is_covered():
    assert set(PAPER_RECIPES) | set(ZOO_RECIPES) | set(OBJECTIVE_RECIPES) == set(RECIPES) - {"tiny", "tiny-dpo",
                                                                                             "tiny-grpo"}  # the CPU recipes


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_shrunk_with_the_same_component_types_and_runs_forward(name, data_root):
    config = shrunk(name, data_root)
    torch.manual_seed(0)
    model = build_model(config.model, shrink=True)
    for module, kind in (("vision", "vision_encoder"), ("connector", "connector"), ("language", "language_model")):
        factory = components().get(kind, config.model[module].name).factory
        assert isinstance(getattr(model, module), getattr(factory, "func", factory))  # a family: functools.partial
    assert model.markup.kind == config.model.image_markup
    assert model.language.template_name == config.model.language.template
    assert sum(p.numel() for p in model.parameters()) < 2_000_000, "shrink must build a tiny model"

    messages = [Message("user", "<image>\nWhat does the image show?"), Message("assistant", "A chest radiograph.")]
    image = Image.new("RGB", (40, 30), (120, 80, 60))
    batch = collate([processor_for(model).encode(messages, [image])], model.tokenizer.pad_token_id)
    with torch.no_grad():
        output = model(**batch)
    assert output.logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(output.loss)


def _weights(directory: Path, module: str) -> dict[str, torch.Tensor]:
    if module == "language":
        files = sorted((directory / "language").glob("*.safetensors"))
        return {key: value for file in files for key, value in load_file(str(file)).items()}
    return load_file(str(directory / f"{module}.safetensors"))


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    assert before.keys() == after.keys()
    return any(not torch.equal(before[key], after[key]) for key in before)


@pytest.mark.parametrize("name", PAPER_RECIPES + ZOO_RECIPES)
def test_paper_recipe_trains_one_step_per_stage(name, data_root, tmp_path):
    from medzoo.core.training.run import planned_stages, train_recipe
    from medzoo.plugins.tuning.lora import has_lora

    config = shrunk(name, data_root)
    stages = planned_stages(config)
    assert [stage.name for stage in stages] == ["alignment", "instruct"]
    torch.manual_seed(stages[0].seed)
    initial = build_model(config.model, shrink=True)
    initial.save_pretrained(str(tmp_path / "initial"))

    train_recipe(config, tmp_path / "run", echo=lambda *_: None)
    aligned, tuned = tmp_path / "run" / "01-alignment" / "model", tmp_path / "run" / "02-instruct" / "model"
    # stage 1 trains the connector only
    assert _changed(_weights(tmp_path / "initial", "connector"), _weights(aligned, "connector"))
    assert not _changed(_weights(tmp_path / "initial", "language"), _weights(aligned, "language"))
    assert not _changed(_weights(tmp_path / "initial", "vision"), _weights(aligned, "vision"))
    # stage 2 trains the connector and the language model (fully, or through LoRA adapters)
    assert _changed(_weights(aligned, "connector"), _weights(tuned, "connector"))
    assert not _changed(_weights(aligned, "vision"), _weights(tuned, "vision"))
    lora = config.stages[1].tuning.language == "lora"
    assert _changed(_weights(aligned, "language"), _weights(tuned, "language")) != lora
    model = MultimodalModel.from_pretrained(str(tmp_path / "run" / "final"))
    assert has_lora(model.language.model) == lora
