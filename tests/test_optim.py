"""Optimizers and learning-rate schedules are named components: every registered one builds and steps, a recipe
chooses them by name (with one-line errors for unknown names and options), and a recipe with sgd + linear trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from PIL import Image

from medzoo.core.errors import RecipeError
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.loading import load_recipe
from medzoo.core.recipes.schema import StageConfig
from medzoo.core.training.optimisation import build_optimizer, build_schedule
from medzoo.testing import TINY_MODEL


def tiny_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    inputs = torch.randn(16, 4)
    return torch.nn.Linear(4, 1), inputs, inputs.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("name", components().names("optimizer"))
def test_every_optimizer_builds_and_steps(name):
    module, inputs, targets = tiny_problem()
    optimizer = components().get("optimizer", name).factory([{"params": module.parameters()}], lr=0.05, weight_decay=0.0)
    assert isinstance(optimizer, torch.optim.Optimizer)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.mse_loss(module(inputs), targets)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", components().names("lr_schedule"))
def test_every_schedule_warms_up_and_steps(name):
    module, _, _ = tiny_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    scheduler = components().get("lr_schedule", name).factory(optimizer, warmup_steps=2, total_steps=10)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(0.05) and lrs[2] == pytest.approx(0.1)
    assert all(0.0 <= lr <= 0.1 + 1e-12 for lr in lrs)
    state = scheduler.state_dict()  # checkpoints save it
    assert state["last_epoch"] == 10


def stage_of(overrides: list[str]) -> object:
    return load_recipe("tiny", overrides).config.stages[1]


def test_the_default_stays_adamw_with_cosine():
    stage = stage_of([])
    module, _, _ = tiny_problem()
    optimizer = build_optimizer(module, stage)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["lr"] == stage.optimizer.lr
    scheduler = build_schedule(optimizer, stage, total_steps=100)
    assert scheduler.lr_lambdas[0](3) == pytest.approx(1.0)  # warmup: ceil(0.03 * 100) steps
    assert scheduler.lr_lambdas[0](100) == pytest.approx(0.0)


def test_a_recipe_chooses_sgd_with_its_options_and_the_linear_schedule():
    stage = stage_of(["stages.instruct.optimizer.name=sgd", "stages.instruct.optimizer.momentum=0.9",
                      "stages.instruct.optimizer.nesterov=true", "stages.instruct.schedule.name=linear"])
    module, _, _ = tiny_problem()
    optimizer = build_optimizer(module, stage)
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["nesterov"] is True
    scheduler = build_schedule(optimizer, stage, total_steps=100)
    assert scheduler.lr_lambdas[0](51) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages.instruct.optimizer.name=adam",
         r"stages\.instruct\.optimizer\.name: unknown optimizer 'adam' \(did you mean \"adamw\"\?\); known: adamw, sgd"),
        ("stages.instruct.schedule.name=cosin",
         r"stages\.instruct\.schedule\.name: unknown lr_schedule 'cosin' \(did you mean \"cosine\"\?\); known: "),
        ("stages.instruct.optimizer.momentum=0.9",
         r"stages\.instruct\.optimizer\.momentum: optimizer 'adamw' takes no option 'momentum'; "
         r"expected one of betas, fused$"),
        ("stages.instruct.optimizer.options.lr=1",
         r"stages\.instruct\.optimizer\.options\.lr: optimizer 'adamw' takes no option 'lr'"),
        ("stages.instruct.schedule.options.num_cycle=1",
         r"stages\.instruct\.schedule\.options\.num_cycle: lr_schedule 'cosine' takes no option 'num_cycle' "
         r"\(did you mean \"num_cycles\"\?\)"),
    ],
)
def test_unknown_names_and_options_are_one_line_errors_naming_the_key(override, message):
    with pytest.raises(RecipeError, match=message) as raised:
        load_recipe("tiny", [override])
    assert "\n" not in str(raised.value) and "tiny.yaml: " in str(raised.value)


def test_the_trainer_names_the_key_of_an_unknown_optimizer_in_an_unchecked_stage():
    stage = OmegaConf.structured(StageConfig(name="s"))
    stage.optimizer.name = "lion"
    module, _, _ = tiny_problem()
    with pytest.raises(RecipeError, match=r"^stages\.s\.optimizer\.name: unknown optimizer 'lion'"):
        build_optimizer(module, stage)


def colour_dataset(root: Path, n: int = 16) -> Path:
    (root / "images").mkdir(parents=True)
    records = []
    for i, (name, rgb) in enumerate([("red", (220, 30, 30)), ("blue", (30, 40, 220))] * (n // 2)):
        Image.new("RGB", (32, 32), rgb).save(root / "images" / f"{i}.png")
        records.append({"id": f"r{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the square?"},
            {"from": "gpt", "value": f"The square is {name}."}]})
    path = root / "train.json"
    path.write_text(json.dumps(records))
    return path


def test_a_recipe_with_sgd_and_linear_trains(tmp_path):
    from medzoo.core.training.run import train_recipe

    data = colour_dataset(tmp_path / "data")
    stage = {
        "name": "instruct", "role": "instruct",
        "datasets": [{"name": "llava-json", "path": str(data), "image_root": str(data.parent / "images")}],
        "tuning": {"vision": "frozen", "connector": "full", "language": "full"},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "schedule": {"name": "linear", "warmup_ratio": 0},
        "max_steps": 6, "global_batch_size": 8, "micro_batch_size": 4, "max_length": 128, "precision": "fp32",
        "seed": 1,
    }
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump({"name": "sgd-linear", "model": TINY_MODEL, "stages": [stage]}))
    config = load_recipe(str(recipe_path)).config
    train_recipe(config, tmp_path / "run", echo=lambda *_: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "01-instruct" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == pytest.approx([0.05 * (1 - k / 6) for k in range(1, 7)])
    assert records[-1]["loss"] < records[0]["loss"]
    assert (tmp_path / "run" / "final").is_dir()


class ThreeModules(torch.nn.Module):
    """The module names a recipe's tuning and optimizer.module_lr address."""

    def __init__(self, frozen_vision: bool = True) -> None:
        super().__init__()
        self.vision, self.connector, self.language = (torch.nn.Linear(2, 2) for _ in range(3))
        self.vision.requires_grad_(not frozen_vision)


def test_module_lr_gives_the_connector_its_own_rate_and_the_schedule_scales_both():
    stage = stage_of(["stages.instruct.optimizer.lr=2e-4", "stages.instruct.optimizer.module_lr.connector=2e-3"])
    model = ThreeModules()
    optimizer = build_optimizer(model, stage)
    rates = sorted((group["lr"], len(group["params"])) for group in optimizer.param_groups)
    assert rates == [(pytest.approx(2e-4), 2), (pytest.approx(2e-3), 2)]
    connector_group = next(g for g in optimizer.param_groups if g["params"][0] is model.connector.weight)
    assert connector_group["lr"] == pytest.approx(2e-3)
    scheduler = build_schedule(optimizer, stage, total_steps=100)
    for _ in range(50):
        optimizer.step()
        scheduler.step()
    language_group = next(g for g in optimizer.param_groups if g["params"][0] is model.language.weight)
    assert connector_group["lr"] / language_group["lr"] == pytest.approx(10.0)


def test_module_lr_of_a_frozen_module_adds_no_group():
    stage = stage_of(["stages.instruct.optimizer.module_lr.vision=1e-3"])
    optimizer = build_optimizer(ThreeModules(frozen_vision=True), stage)
    assert [len(group["params"]) for group in optimizer.param_groups] == [4]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages.instruct.optimizer.module_lr.projector=1e-3",
         r"stages\.instruct\.optimizer\.module_lr\.projector: not a module of the model.*; "
         r"expected one of vision, connector, language$"),
        ("stages.instruct.optimizer.module_lr.connector=0",
         r"stages\.instruct\.optimizer\.module_lr\.connector: 0\.0 is out of range; expected a number > 0$"),
    ],
)
def test_module_lr_errors_name_the_key(override, message):
    with pytest.raises(RecipeError, match=message) as raised:
        load_recipe("tiny", [override])
    assert "\n" not in str(raised.value)
