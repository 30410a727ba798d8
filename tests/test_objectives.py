"""The training objective is a component kind: ``sft`` is today's supervised loss to the bit, a stage names its
objective in the recipe (validated like every component), curricula own their role names, and run.json records
what each stage optimised."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from medzoo.core.errors import RecipeError
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.loading import load_recipe
from medzoo.testing import TINY_MODEL

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 20)}


def colour_records(root: Path, n: int = 16) -> Path:
    """LLaVA conversation records about coloured squares (llava-json)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        Image.new("RGB", (32, 32), COLOURS[colour]).save(root / "images" / f"{i}.png")
        records.append({"id": f"r{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the square?"},
            {"from": "gpt", "value": f"The square is {colour}."}]})
    path = root / "train.json"
    path.write_text(json.dumps(records))
    return path


def two_stage_recipe(tmp_path: Path, data: Path, objective: dict | None) -> Path:
    def stage(name: str, tuning: dict, lr: float) -> dict:
        spec = {"name": name, "role": name, "datasets": [{"name": "llava-json", "path": str(data),
                                                        "image_root": str(data.parent / "images")}],
                "tuning": tuning, "optimizer": {"lr": lr}, "max_steps": 2, "global_batch_size": 8,
                "micro_batch_size": 4, "max_length": 128, "precision": "fp32", "seed": 3}
        if objective is not None:
            spec["objective"] = objective
        return spec

    recipe = {"name": "objective-test", "model": TINY_MODEL, "stages": [
        stage("alignment", {"vision": "frozen", "connector": "full", "language": "frozen"}, 2e-3),
        stage("instruct", {"vision": "frozen", "connector": "full", "language": "full"}, 1e-3)]}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def train(recipe: Path, output: Path) -> Path:
    from medzoo.core.training.run import train_recipe

    train_recipe(load_recipe(str(recipe)).config, output, echo=lambda *a, **k: None)
    return output


def weights(run: Path) -> dict[str, torch.Tensor]:
    return {f"{file.name}:{key}": value for file in sorted((run / "final").rglob("*.safetensors"))
            for key, value in load_file(str(file)).items()}


# -- sft is today's loss --------------------------------------------------------------------------------------

def test_sft_loss_is_the_supervised_cross_entropy_over_the_steps_target_tokens():
    from medzoo.core.inference import processor_for
    from medzoo.core.interfaces.conversation import Message
    from medzoo.core.model.build import build_model
    from medzoo.core.model.processor import IGNORE_INDEX, collate
    from medzoo.core.training.loss import count_targets, step_loss

    torch.manual_seed(0)
    model = build_model(TINY_MODEL)
    processor = processor_for(model)
    samples = [processor.encode([Message("user", f"<image>\nQuestion {i}?"), Message("assistant", "A" * (i + 1))],
                                [Image.new("RGB", (32, 32), (40 * i, 90, 200))]) for i in range(3)]
    batch = collate(samples, model.tokenizer.pad_token_id)
    objective = components().get("objective", "sft").factory()
    step_targets = objective.normaliser(samples) + 5  # a step of several micro-batches: this is one of them
    got = objective.loss(model, batch, step_targets, scale=2.0)
    # the formula written out: every logit, shifted, cross-entropy summed where a label follows, / step targets
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                               reduction="sum") * 2.0 / step_targets
    assert objective.normaliser(samples) == count_targets(batch["labels"])
    assert torch.allclose(got.loss, expected, rtol=1e-5) and got.metrics == {}
    assert torch.equal(got.loss, step_loss(model, batch, step_targets, scale=2.0))  # the pre-objective trainer's loss


def test_naming_sft_explicitly_trains_the_same_weights_and_losses_as_the_default(tmp_path):
    data = colour_records(tmp_path / "data")
    default = train(two_stage_recipe(tmp_path / "a", data, None), tmp_path / "a" / "run")
    named = train(two_stage_recipe(tmp_path / "b", data, {"name": "sft"}), tmp_path / "b" / "run")
    a, b = weights(default), weights(named)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    for stage in ("01-alignment", "02-instruct"):
        losses = [[json.loads(line)["loss"] for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
                  for run in (default, named)]
        assert losses[0] == losses[1] and len(losses[0]) == 2
    run = json.loads((default / "run.json").read_text())
    assert run["objectives"] == [{"stage": "alignment", "name": "sft"}, {"stage": "instruct", "name": "sft"}]
    assert [stage["objective"] for stage in run["stages"]] == [{"name": "sft"}] * 2


# -- the kind, the recipe section, the roles ----------------------------------------------------------------------

def test_objectives_are_a_kind_listed_by_medzoo_plugins():
    from medzoo.app.cli.main import cli

    result = CliRunner().invoke(cli, ["plugins", "--json"])
    rows = {(row["kind"], row["name"]): row for row in json.loads(result.output)["components"]}
    assert {("objective", "sft"), ("objective", "dpo")} <= set(rows)
    assert rows[("objective", "sft")]["provider"] == "medzoo.objectives"
    import medzoo

    assert issubclass(components().get("objective", "dpo").factory, medzoo.Objective)


BASE = "defaults: [tiny]\nname: bad\n"
DPO_STAGE = ("  - name: dpo\n    role: preference\n    datasets:\n"
             "      - {name: llava-preference, path: p.json}\n")


@pytest.mark.parametrize(("text", "pattern"), [
    (BASE + "stages:\n  - name: instruct\n    objective: {name: dpoo}\n",
     r"stages\.instruct\.objective\.name: unknown objective 'dpoo' \(did you mean \"dpo\"\?\); known: dpo, grpo, sft"),
    (BASE + "stages:\n" + DPO_STAGE + "    objective: {name: dpo, betta: 0.2}\n",
     r"stages\.dpo\.objective\.betta: objective 'dpo' takes no option 'betta' \(did you mean \"beta\"\?\)"),
    (BASE + "stages:\n" + DPO_STAGE + "    objective: {name: dpo, beta: -1}\n",
     r"stages\.dpo\.objective\.beta: -1 is out of range; expected a finite number > 0$"),
    (BASE + "stages:\n" + DPO_STAGE + "    objective: {name: dpo, loss: hinge}\n",
     r"stages\.dpo\.objective\.loss: 'hinge' is not allowed; expected one of sigmoid, ipo$"),
    (BASE + "stages:\n" + DPO_STAGE + "    objective: {name: dpo, loss: ipo, label_smoothing: 0.1}\n",
     r"stages\.dpo\.objective\.label_smoothing: 0\.1 is set, but loss 'ipo' takes none"),
    (BASE + "stages:\n" + DPO_STAGE + "    objective: {name: dpo, reference: frozen}\n",
     r"stages\.dpo\.objective\.reference: 'frozen' is not allowed; expected one of auto, adapters_off, precomputed"),
    (BASE + "stages:\n  - name: instruct\n    objective: {name: sft, beta: 0.1}\n",
     r"stages\.instruct\.objective\.beta: objective 'sft' takes no option 'beta'; expected one of \(none\)"),
    (BASE + "stages:\n  - name: instruct\n    objective: {name: dpo}\n",
     r"stages\.instruct\.datasets\[0\]\.name: dataset 'llava-json' gives conversation records, but objective 'dpo' "
     r"trains on preference records; expected a preference dataset \(llava-preference, rlaif-v\)"),
    (BASE + "stages:\n" + DPO_STAGE + "    objective: {name: dpo}\n    packing: true\n",
     r"stages\.dpo\.packing: true, but objective 'dpo' cannot pack samples; expected false"),
    (BASE + "stages:\n  - name: instruct\n    role: instrct\n",
     r"stages\.instruct\.role: 'instrct' is not a role of curriculum 'llava-med' \(did you mean \"instruct\"\?\); "
     r"expected one of alignment, instruct, preference, downstream, custom"),
])
def test_a_bad_objective_or_role_is_one_line_naming_the_key(tmp_path, text, pattern):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as raised:
        load_recipe(str(path))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert re.search(pattern, message), message


def test_a_curriculum_declares_the_roles_it_accepts(tmp_path):
    from medzoo import Curriculum, hookimpl, register_plugin, unregister_plugin

    class WarmupFirst(Curriculum):
        name = "warmup-first"
        roles = ("warmup", "main")

        def plan(self, stages):
            return sorted(stages, key=lambda stage: stage.role != "warmup")

    class Plugin:
        @hookimpl
        def register_curricula(self, register):
            register("warmup-first", WarmupFirst, description="test curriculum")

    plugin = Plugin()
    register_plugin(plugin, name="test-roles")
    try:
        path = tmp_path / "r.yaml"
        path.write_text(BASE + "curriculum: {name: warmup-first}\nstages:\n  - {name: alignment, role: warmup}\n"
                        "  - {name: instruct, role: main}\n")
        assert [stage.role for stage in load_recipe(str(path)).config.stages] == ["warmup", "main"]
        path.write_text(BASE + "curriculum: {name: warmup-first}\nstages:\n  - {name: alignment, role: alignment}\n")
        with pytest.raises(RecipeError, match=r"stages\.alignment\.role: 'alignment' is not a role of curriculum "
                                              r"'warmup-first'; expected one of warmup, main"):
            load_recipe(str(path))
    finally:
        unregister_plugin(plugin)


def test_the_example_plugins_objective_registers_through_the_same_hook(monkeypatch, tmp_path):
    from medzoo.core.inference import processor_for
    from medzoo.core.interfaces.conversation import Message
    from medzoo.core.model.build import build_model
    from medzoo.core.model.processor import collate
    from medzoo.core.plugin_system.manager import register_plugin, unregister_plugin

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "docs" / "examples" / "medzoo-example-plugin"))
    import medzoo_example.plugin as example

    register_plugin(example, name="example-objective")
    try:
        smoothed = components().get("objective", "smoothed-sft").factory
        torch.manual_seed(0)
        model = build_model(TINY_MODEL)
        samples = [processor_for(model).encode([Message("user", "Which organ?"), Message("assistant", "The liver.")])]
        batch = collate(samples, model.tokenizer.pad_token_id)
        sft = components().get("objective", "sft").factory()
        plain = sft.loss(model, batch, sft.normaliser(samples)).loss
        assert torch.allclose(smoothed(smoothing=0.0).loss(model, batch, sft.normaliser(samples)).loss, plain)
        result = smoothed(smoothing=0.2).loss(model, batch, sft.normaliser(samples))
        assert not torch.allclose(result.loss, plain) and torch.allclose(result.metrics["loss/cross_entropy"], plain)
        path = tmp_path / "r.yaml"
        path.write_text(BASE + "stages:\n  - name: instruct\n    objective: {name: smoothed-sft, smoothing: 1.5}\n")
        with pytest.raises(RecipeError, match=r"stages\.instruct\.objective\.smoothing: 1\.5 is out of range"):
            load_recipe(str(path))
    finally:
        unregister_plugin(example)
