"""Nothing mistakes a DPO or GRPO model for a supervised one: run.json and DONE.json record every stage's objective
with its options (a GRPO stage: each reward with its weight, the rollout backend), the model card lists them under
"Training objectives", and the leaderboard row's notes say ``+DPO`` / ``+GRPO (box-iou)``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from medzoo.app.leaderboard.render import leaderboard_from_runs, render
from medzoo.app.model_cards.card import render_card
from medzoo.app.model_cards.sources import CardContext, build_card
from medzoo.app.training_objectives import objective_of, row_note, run_objectives, up_to
from medzoo.testing import TINY_MODEL

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 20)}
GRPO_RECORD = {"stage": "grpo", "name": "grpo", "group_size": 8, "beta": 0.0, "clip_high": 0.28,
               "rewards": {"box-iou": {"weight": 1.0, "mode": "iou", "answer_tag": False},
                           "format": {"weight": 0.5}},
               "rollouts": {"backend": "vllm", "mode": "colocate"}}
DPO_RECORD = {"stage": "dpo", "name": "dpo", "beta": 0.1, "loss": "sigmoid", "sft_weight": 0.0}
SFT = [{"stage": "alignment", "name": "sft"}, {"stage": "instruct", "name": "sft"}]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def colour_records(root: Path, n: int = 4) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        Image.new("RGB", (32, 32), COLOURS[colour]).save(root / "images" / f"{i}.png")
        records.append({"id": f"r{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the square?"}, {"from": "gpt", "value": colour}]})
    path = root / "train.json"
    path.write_text(json.dumps(records))
    return path


# -- run.json and DONE.json, from a real run ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory) -> Path:
    """A tiny run: one supervised step, then one GRPO step whose rewards are exact-match (1.0) and format (0.5)."""
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.run import train_recipe

    base = tmp_path_factory.mktemp("objective-run")
    data = colour_records(base / "data")

    def stage(name: str, role: str, tuning: dict, **extra) -> dict:
        return {"name": name, "role": role, "tuning": tuning, "optimizer": {"lr": 1e-3}, "max_steps": 1,
                "datasets": [{"name": "llava-json", "path": str(data), "image_root": str(data.parent / "images")}],
                "global_batch_size": 2, "micro_batch_size": 2, "max_length": 96, "precision": "fp32", "seed": 3,
                **extra}

    grpo = {"name": "grpo", "group_size": 2, "max_completion_length": 3,
            "rewards": {"exact-match": 1.0, "format": {"weight": 0.5}}}
    recipe = {"name": "objective-records", "model": TINY_MODEL, "stages": [
        stage("instruct", "instruct", {"vision": "frozen", "connector": "full", "language": "full"}),
        stage("grpo", "preference", {"vision": "frozen", "connector": "frozen", "language": "full"}, objective=grpo)]}
    (base / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    train_recipe(load_recipe(str(base / "recipe.yaml")).config, base / "run", echo=lambda *a, **k: None)
    return base / "run"


def test_run_json_records_each_stages_objective_with_the_rewards_weights_and_rollout_backend(grpo_run):
    run = json.loads((grpo_run / "run.json").read_text())
    sft, grpo = run["objectives"]
    assert sft == {"stage": "instruct", "name": "sft"}
    assert (grpo["stage"], grpo["name"]) == ("grpo", "grpo")
    # every option with its default filled in, not only what the recipe set
    assert grpo["group_size"] == 2 and grpo["max_completion_length"] == 3 and grpo["normalisation"] == "grpo"
    assert grpo["clip_low"] == 0.2 and grpo["beta"] == 0.0 and grpo["updates_per_rollout"] == 1
    assert grpo["rewards"]["exact-match"]["weight"] == 1.0 and grpo["rewards"]["format"]["weight"] == 0.5
    assert grpo["rollouts"] == {"backend": "engine"}
    done = json.loads((grpo_run / "02-grpo" / "DONE.json").read_text())
    assert {"stage": "grpo", **done["objective"]} == grpo
    assert [stage["objective"]["name"] for stage in run["stages"]] == ["sft", "grpo"]


def test_the_real_runs_card_and_leaderboard_row_name_the_grpo_stage(grpo_run, tmp_path):
    from medzoo.app.model_cards.writing import refresh_model_card

    run = tmp_path / "run"
    shutil.copytree(grpo_run, run)
    refresh_model_card(run / "final")
    text = (run / "final" / "README.md").read_text()
    section = text.split("## Training objectives", 1)[1].split("\n## ", 1)[0]
    assert "stage `instruct`: `sft`" in section
    assert "stage `grpo`: `grpo` (rewards `exact-match` x 1 (answer_tag: false, match: exact); `format` x 0.5" in section
    assert "rollouts from `engine`" in section and "group_size 2" in section
    refresh_model_card(run / "01-instruct" / "model")
    stage_text = (run / "01-instruct" / "model" / "README.md").read_text()
    assert "stage `instruct`: `sft`" in stage_text and "`grpo`" not in stage_text  # trained before the GRPO stage
    (run / "eval" / "synth-coloninst-rec").mkdir(parents=True)
    (run / "eval" / "synth-coloninst-rec" / "metrics.json").write_text(json.dumps({"mean_iou": 30.0}))
    [row] = leaderboard_from_runs([str(run)]).rows
    assert row.details.startswith("+GRPO (exact-match 1, format 0.5)")


# -- what is read back from the records ---------------------------------------------------------------------------

@pytest.mark.parametrize(("objectives", "note"), [
    (SFT, ""),
    ([*SFT, DPO_RECORD], "+DPO"),
    ([*SFT, {"stage": "grpo", "name": "grpo", "rewards": {"box-iou": 1.0}}], "+GRPO (box-iou)"),  # the recipe's form
    ([*SFT, GRPO_RECORD], "+GRPO (box-iou 1, format 0.5)"),
    ([*SFT, DPO_RECORD, GRPO_RECORD], "+DPO +GRPO (box-iou 1, format 0.5)"),
])
def test_the_row_note_names_every_stage_beyond_supervised_tuning(objectives, note):
    assert row_note(run_objectives({"objectives": objectives})) == note


def test_objectives_are_read_from_the_stages_when_run_json_lists_none():
    info = {"stages": [{"stage": "instruct", "objective": {"name": "sft"}}, {"stage": "dpo", "objective": DPO_RECORD}]}
    assert [(o.stage, o.name) for o in run_objectives(info)] == [("instruct", "sft"), ("dpo", "dpo")]
    assert run_objectives({"stages": [{"stage": "instruct"}]})[0].name == "sft"  # recorded before objectives
    assert run_objectives(None) == [] and run_objectives({"recipe": "x"}) == []


def test_up_to_keeps_the_stages_that_trained_the_weights():
    objectives = run_objectives({"objectives": [*SFT, DPO_RECORD]})
    assert [o.stage for o in up_to(objectives, "instruct")] == ["alignment", "instruct"]
    assert [o.stage for o in up_to(objectives, None)] == ["alignment", "instruct", "dpo"]


def test_a_reward_weight_that_is_not_a_number_is_shown_as_nan_not_dropped():
    objective = objective_of("grpo", {"name": "grpo", "rewards": {"box-iou": {"weight": "heavy"}}})
    assert row_note([objective]) == "+GRPO (box-iou nan)"


# -- fake run folders: the card and the leaderboard ---------------------------------------------------------------

def fake_run(root: Path, objectives: list[dict], stages: list[str] | None = None) -> Path:
    """A run folder as ``medzoo run`` leaves it (marker, recipe.yaml, run.json, final/, stage models, one score)."""
    root.mkdir(parents=True)
    (root / "medzoo_run.json").write_text("{}")
    names = stages or [entry["stage"] for entry in objectives]
    (root / "recipe.yaml").write_text(yaml.safe_dump({"name": root.name, "stages": [
        {"name": name, "role": "instruct", "tuning": {"language": "full"}, "epochs": 1} for name in names]}))
    (root / "run.json").write_text(json.dumps({"recipe": root.name, "objectives": objectives,
                                               "stages": [{"stage": entry["stage"]} for entry in objectives]}))
    for index, name in enumerate(names, start=1):
        (root / f"{index:02d}-{name}" / "model").mkdir(parents=True)
    (root / "final").mkdir()
    (root / "eval" / "synth-vqa-rad").mkdir(parents=True)
    (root / "eval" / "synth-vqa-rad" / "metrics.json").write_text(json.dumps({"closed_accuracy": 60.0}))
    return root


def card_text(directory: Path, stage: str) -> str:
    spec = {"vision": {"name": "clip"}, "connector": {"name": "mlp2x_gelu"}, "language": {"name": "mistral"}}
    card = build_card(CardContext(spec, {"stage": stage, "recipe": "r"}, directory))
    return render_card(card)


def test_the_card_lists_each_stages_objective_and_the_grpo_rewards_with_weights(tmp_path):
    run = fake_run(tmp_path / "run", [*SFT, GRPO_RECORD])
    text = card_text(run / "final", "grpo")
    section = text.split("## Training objectives\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section == [
        "- stage `alignment`: `sft` (supervised next-token cross-entropy on the replies)",
        "- stage `instruct`: `sft` (supervised next-token cross-entropy on the replies)",
        "- stage `grpo`: `grpo` (rewards `box-iou` x 1 (mode: iou, answer_tag: false); `format` x 0.5; rollouts "
        "from `vllm`; group_size 8, beta 0.0, clip_high 0.28)",
    ]
    assert "- grpo" in text.split("---")[1]  # a Hub tag
    stage_card = card_text(run / "02-instruct" / "model", "instruct")
    assert "`grpo`" not in stage_card.split("## Training objectives", 1)[1].split("\n## ", 1)[0]


def test_a_card_of_a_run_still_training_reads_the_finished_stages_done_json(tmp_path):
    run = fake_run(tmp_path / "run", [*SFT, DPO_RECORD])
    (run / "run.json").unlink()
    for index, entry in enumerate([*SFT, DPO_RECORD][:2], start=1):
        objective = {k: v for k, v in entry.items() if k != "stage"}
        (run / f"{index:02d}-{entry['stage']}" / "DONE.json").write_text(
            json.dumps({"stage": entry["stage"], "objective": objective}))
    text = card_text(run / "02-instruct" / "model", "instruct")
    assert text.count("supervised next-token cross-entropy") == 2 and "`dpo`" not in text


def test_a_supervised_runs_card_has_no_tag_beyond_its_components(tmp_path):
    run = fake_run(tmp_path / "run", SFT)
    text = card_text(run / "final", "instruct")
    assert "## Training objectives" in text
    assert set(yaml.safe_load(text.split("---")[1])["tags"]) == {"medical", "llava", "medzoo", "clip", "mlp2x_gelu",
                                                                  "mistral"}


def test_leaderboard_rows_say_plus_dpo_and_plus_grpo_in_their_notes(tmp_path):
    sft = fake_run(tmp_path / "sft", SFT)
    dpo = fake_run(tmp_path / "dpo", [*SFT, DPO_RECORD])
    grpo = fake_run(tmp_path / "grpo", [*SFT, {"stage": "grpo", "name": "grpo", "rewards": {"box-iou": 1.0}}])
    board = leaderboard_from_runs([str(sft), str(dpo), str(grpo)])
    notes = {row.model: row.details for row in board.rows}
    assert notes == {"sft": "", "dpo": "+DPO", "grpo": "+GRPO (box-iou)"}
    markdown = render(board, "md")
    assert "| dpo |" in markdown and "+DPO" in markdown and "+GRPO (box-iou)" in markdown
    assert "+GRPO (box-iou)" in render(board, "csv")


def test_eval_scores_of_a_run_model_get_the_note_of_the_stages_up_to_it(tmp_path):
    run = fake_run(tmp_path / "run", [*SFT, DPO_RECORD])
    for name, model in (("eval-final", run / "final"), ("eval-instruct", run / "02-instruct" / "model")):
        folder = tmp_path / name / "synth-vqa-rad"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"closed_accuracy": 61.0, "model_id": str(model)}))
    rows = leaderboard_from_runs([str(tmp_path / "eval-final"), str(tmp_path / "eval-instruct")]).rows
    assert [row.details.split(";")[0] for row in rows] == ["+DPO", f"model_id {run / '02-instruct' / 'model'}"]
