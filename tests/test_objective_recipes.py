"""The published-shape recipes beyond supervised tuning: ``llava-med-v1.5-dpo`` (v1.5 plus a DPO stage in
STLLaVA-Med's settings) and ``colongpt-grpo`` (ColonGPT plus a GRPO stage on ColonINST REC rewarded by box IoU)
load with their cited settings, and under ``-o shrink=true`` train one step per stage on synthetic data laid out
under the real file names; the ``colon-inst`` reader's ``tasks`` option that selects the REC dialogues."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medzoo.core.recipes.loading import load_recipe

#: one optimizer step of two samples (two prompts: 2 x group_size rows); no warmup
SMALL_STAGE = ["max_steps=1", "global_batch_size=2", "micro_batch_size=2", "max_length=160", "schedule.warmup_ratio=0"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_llava_med_v15_dpo_is_v15_plus_a_dpo_stage_in_stllava_meds_settings():
    base = load_recipe("llava-med-v1.5").config
    config = load_recipe("llava-med-v1.5-dpo").config
    assert config.model == base.model
    assert [s.name for s in config.stages] == [*(s.name for s in base.stages), "dpo"]
    dpo = config.stages[-1]
    assert dpo.role == "preference"
    assert dict(dpo.objective) == {"name": "dpo", "loss": "sigmoid", "beta": 0.1, "label_smoothing": 0.0,
                                   "sft_weight": 0.0, "reference": "auto"}
    assert (dpo.tuning.vision, dpo.tuning.connector, dpo.tuning.language) == ("frozen", "frozen", "lora")
    assert (dpo.tuning.options["language"]["r"], dpo.tuning.options["language"]["alpha"]) == (128, 256)
    assert (dpo.optimizer.lr, dpo.epochs, dpo.global_batch_size, dpo.max_length) == (5e-6, 1, 256, 2048)
    assert dpo.datasets[0].name == "llava-preference"


def test_colongpt_grpo_is_colongpt_plus_a_grpo_stage_on_the_rec_dialogues():
    base = load_recipe("colongpt").config
    config = load_recipe("colongpt-grpo").config
    assert config.model == base.model
    assert [s.name for s in config.stages] == ["alignment", "instruct", "grpo"]
    grpo = config.stages[-1]
    objective = dict(grpo.objective)
    assert objective["name"] == "grpo" and dict(objective["rewards"]) == {"box-iou": 1.0}
    assert (objective["group_size"], objective["clip_low"], objective["clip_high"], objective["beta"]) == (
        8, 0.2, 0.28, 0.0)
    assert (objective["normalisation"], objective["scale_rewards"]) == ("dapo", "group")
    assert grpo.datasets[0].path.endswith("Json-file/train/ColonINST-train-3tasks.json")
    assert list(grpo.datasets[0].options["tasks"]) == ["rec"]
    assert (grpo.tuning.vision, grpo.tuning.connector, grpo.tuning.language) == ("frozen", "frozen", "lora")


# -- shrunk: one step per stage ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The synthetic set under the real LLaVA-Med, STLLaVA-Med-DPO and ColonINST file names."""
    from medzoo.app.data_synth.generate import synthesize

    root = tmp_path_factory.mktemp("objective-recipes-data")
    synthesize(root, seed=2, sizes={"train": 10, "val": 0, "test": 0})
    copies = {
        "alignment/llava_med_alignment_500k.json": "llava_med/alignment.json",
        "instruct/llava_med_instruct_60k_inline_mention.json": "llava_med/instruct.json",
        "preference/stllava_med_dpo.json": "preference/train.json",
        "Json-file/train/ColonINST-train-cap.json": "coloninst/train/cls_train.json",
    }
    for real, synthetic in copies.items():
        (root / real).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / synthetic, root / real)
    three_tasks = [record for task in ("cls", "reg", "rec")
                   for record in json.loads((root / f"coloninst/train/{task}_train.json").read_text())]
    (root / "Json-file/train/ColonINST-train-3tasks.json").write_text(json.dumps(three_tasks))
    shutil.copytree(root / "images", root / "Positive-images")
    return root


def shrunk(name: str, data_root: Path, extra: list[str]) -> object:
    overrides = ["shrink=true", f"data.root={data_root}", *extra]
    config = load_recipe(name, overrides).config
    overrides += [f"stages.{stage.name}.{setting}" for stage in config.stages for setting in SMALL_STAGE]
    return load_recipe(name, overrides).config


def language_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The language model's weights and its adapters' (saved apart under ``adapters/``)."""
    files = sorted([*(directory / "language").glob("*.safetensors"), *(directory / "adapters").rglob("*.safetensors")])
    return {f"{file.parent.name}:{key}": value for file in files for key, value in load_file(str(file)).items()}


def trained(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    """A weight changed, or a fresh adapter's B matrix (zero at initialisation) moved."""
    return any(not torch.equal(before[key], value) if key in before else "lora_b" in key.lower() and bool(value.any())
               for key, value in after.items())


@pytest.mark.parametrize(("name", "stage", "extra"), [
    ("llava-med-v1.5-dpo", "dpo", []),
    ("colongpt-grpo", "grpo", ["stages.grpo.objective.max_completion_length=6", "stages.grpo.objective.group_size=2"]),
])
def test_the_recipe_trains_one_step_per_stage_shrunk(name, stage, extra, data_root, tmp_path):
    from medzoo.core.training.run import planned_stages, train_recipe

    config = shrunk(name, data_root, extra)
    assert [s.name for s in planned_stages(config)] == ["alignment", "instruct", stage]
    lines: list[str] = []
    train_recipe(config, tmp_path / "run", echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    instruct, last = tmp_path / "run" / "02-instruct" / "model", tmp_path / "run" / f"03-{stage}" / "model"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [o["name"] for o in run["objectives"]] == ["sft", "sft", stage]
    [log] = [json.loads(line) for line in (last.parent / "metrics.jsonl").read_text().splitlines()]
    if stage == "dpo":
        assert trained(language_weights(instruct), language_weights(last))
        assert {"rewards/accuracy", "rewards/margin"} <= set(log)
    else:
        assert run["objectives"][-1]["rewards"] == {"box-iou": {"weight": 1.0, "mode": "iou", "answer_tag": False}}
        # a random shrunk model writes no box: every completion scores 0, every group is equal, nothing to learn
        # (reported, not hidden); the box IoU is what was scored
        assert log["rewards/box-iou"] == 0.0 and log["groups/equal"] == 1.0 and log["loss"] == 0.0
        assert log["completions/length"] > 0


# -- the colon-inst reader's tasks option -------------------------------------------------------------------------

def test_the_tasks_option_keeps_the_selected_tasks_and_counts_the_others(data_root):
    from medzoo.core.plugin_system.manager import components

    reader = components().get("dataset", "colon-inst").factory
    path = str(data_root / "Json-file/train/ColonINST-train-3tasks.json")
    everything, _ = reader().read(path, str(data_root / "Positive-images"))
    rec, report = reader(tasks=["rec"]).read(path, str(data_root / "Positive-images"))
    tasks = [record.metadata["task"] for record in everything]
    assert rec and all(record.metadata["task"] == "rec" for record in rec)
    assert len(rec) == tasks.count("rec")
    assert report.skipped == {"task cls not selected": tasks.count("cls"), "task reg not selected": tasks.count("reg")}
    assert "task cls not selected" in report.summary()
    # a selection is not a bad record: on_bad_record error does not stop on it
    assert len(reader(tasks="rec,cls").read(path, str(data_root / "Positive-images"), "error")[0]) == len(rec) + tasks.count("cls")


@pytest.mark.parametrize("value", [["rec", "vqa"], [], "polyp", 3])
def test_a_bad_tasks_option_is_one_line_naming_it(value, data_root):
    from medzoo.core.errors import DataError
    from medzoo.core.plugin_system.manager import components

    reader = components().get("dataset", "colon-inst").factory(tasks=value)
    with pytest.raises(DataError, match=r"^colon-inst option tasks=.*: expected a list of cls, reg, rec, cap$"):
        reader.read(str(data_root / "Json-file/train/ColonINST-train-3tasks.json"))
