"""Experiment tracking through accelerate's trackers: a tiny two-stage run's TensorBoard events, read back with
TensorBoard's own EventAccumulator, hold every step's loss, learning rate and gradient norm against the run's
global step, the stage summaries and the resolved recipe as hparams; ``trackers: []`` writes none; an unknown
tracker is a one-line RecipeError; a tracker that cannot start is one warning and the run finishes; wandb
(offline) and MLflow (a local file store) where installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from medzoo.testing import TINY_MODEL

STEPS = 3
STAGES = ("alignment", "instruct")


def write_recipe(root: Path) -> Path:
    """Two stages of STEPS steps on 8 one-colour images (tests/test_training.py's layout, smaller)."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (name, rgb) in enumerate([("red", (220, 30, 30)), ("blue", (30, 40, 220))] * 4):
        Image.new("RGB", (32, 32), rgb).save(images / f"{i}.png")
        records.append({"id": f"r{i}", "image": f"{i}.png", "answer_type": "OPEN", "question_type": "colour",
                        "conversations": [{"from": "human", "value": "<image>\nWhat colour is the square?"},
                                          {"from": "gpt", "value": f"The square is {name}."}]})
    (root / "train.json").write_text(json.dumps(records))

    def stage(name: str, language: str, lr: float) -> dict:
        return {"name": name, "role": name,
                "datasets": [{"name": "med-vqa", "path": str(root / "train.json"), "image_root": str(images),
                              "options": {"split": "all"}}],
                "tuning": {"vision": "frozen", "connector": "full", "language": language},
                "optimizer": {"lr": lr}, "max_steps": STEPS, "global_batch_size": 4, "micro_batch_size": 4,
                "max_length": 96, "precision": "fp32", "seed": 3, "schedule": {"warmup_ratio": 0.0}}

    recipe = {"name": "tracking-tiny", "model": TINY_MODEL,
              "stages": [stage("alignment", "frozen", 2e-3), stage("instruct", "full", 1e-3)]}
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def train(tmp_path: Path, *overrides: str) -> tuple[Path, list[str]]:
    """Train the tiny recipe in this process; (run folder, the lines it said)."""
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.run import train_recipe
    from medzoo.testing import single_thread

    config = load_recipe(write_recipe(tmp_path / "data"), list(overrides)).config
    lines: list[str] = []
    with single_thread():
        train_recipe(config, tmp_path / "run", echo=lambda *parts, **_: lines.append(" ".join(map(str, parts))))
    return tmp_path / "run", lines


def logged(run: Path) -> list[dict]:
    """Every stage's metrics.jsonl records, in run order."""
    return [json.loads(line) for stage in sorted(run.glob("[0-9][0-9]-*"))
            for line in (stage / "metrics.jsonl").read_text().splitlines()]


def test_two_stage_run_writes_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run, lines = train(tmp_path, "logging.trackers=[tensorboard]")
    assert f"tracking: tensorboard under {run / 'logs'}" in lines
    events = EventAccumulator(str(run / "logs" / "tensorboard"))
    events.Reload()
    records = logged(run)
    assert len(records) == 2 * STEPS
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "image_tokens"):
        scalars = events.Scalars(f"train/{key}")
        assert [s.step for s in scalars] == list(range(1, 2 * STEPS + 1)), key  # the instruct stage follows
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in records], rel=1e-6), key
    assert all(r["grad_norm"] > 0 and r["image_tokens"] == 4 * 16 for r in records)
    done = json.loads((run / "02-instruct" / "DONE.json").read_text())
    (last_loss,) = events.Scalars("stage/instruct/last_loss")
    assert (last_loss.step, last_loss.value) == (2 * STEPS, pytest.approx(done["last_loss"], rel=1e-6))

    (hparams_dir,) = [p for p in (run / "logs" / "tensorboard").iterdir()
                      if p.is_dir() and list(p.glob("events.out.tfevents.*"))]
    hparams_events = EventAccumulator(str(hparams_dir))
    hparams_events.Reload()
    content = hparams_events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    stored = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert stored["name"].string_value == "tracking-tiny"
    assert stored["stages.instruct.optimizer.lr"].number_value == pytest.approx(1e-3)
    assert stored["logging.trackers"].string_value == '["tensorboard"]'


def test_no_tracker_writes_no_events(tmp_path):
    run, lines = train(tmp_path, "logging.trackers=[]")
    assert not (run / "logs").exists()
    assert not any(line.startswith("tracking:") for line in lines)
    assert len(logged(run)) == 2 * STEPS and (run / "plots" / "instruct-loss.png").is_file()


def test_an_unknown_tracker_is_one_line_naming_the_key(tmp_path):
    from medzoo.core.errors import RecipeError
    from medzoo.core.recipes.loading import load_recipe

    with pytest.raises(RecipeError) as raised:
        load_recipe(write_recipe(tmp_path), ["logging.trackers=[tensorbord]"])
    message = str(raised.value)
    assert "\n" not in message and "logging.trackers[0]: 'tensorbord' is not a tracker" in message
    assert 'did you mean "tensorboard"' in message


def test_a_tracker_that_cannot_start_is_a_warning_and_the_run_finishes(tmp_path):
    """MLflow on a store scheme it does not know (or not installed at all): it fails to start, TensorBoard logs."""
    run, lines = train(tmp_path, "logging.trackers=[tensorboard,mlflow]",
                       "logging.options.mlflow.tracking_uri=nowhere://store")
    warnings = [line for line in lines if line.startswith("warning: tracker mlflow could not start")]
    assert len(warnings) == 1 and "\n" not in warnings[0] and warnings[0].endswith("the run continues without it")
    assert f"tracking: tensorboard under {run / 'logs'}" in lines
    assert (run / "final").is_dir() and json.loads((run / "run.json").read_text())["stages"][1]["steps"] == STEPS
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_every_steps_thins_the_step_scalars_keeping_each_stages_last(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = train(tmp_path, "logging.every_steps=2")
    events = EventAccumulator(str(run / "logs" / "tensorboard"))  # the default tracker
    events.Reload()
    assert [s.step for s in events.Scalars("train/loss")] == [2, 3, 5, 6]


def test_evaluation_metrics_and_the_ablation_drop_are_sent(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.tracking import RunTracking

    recipe = load_recipe(write_recipe(tmp_path / "data"), ["logging.trackers=[tensorboard]"]).config
    with RunTracking.for_recipe(recipe, echo=lambda *_: None) as tracking:
        tracking.start(tmp_path / "run", recipe)
        tracking.end_stage({"stage": "alignment", "steps": 4, "first_loss": 2.0, "last_loss": 1.0})
        tracking.log_evaluation("vqa-rad", {"closed_accuracy": 61.5, "n": 10, "benchmark": "vqa-rad",
                                            "image_ablation": {"kind": "noise", "drop": {"closed_accuracy": 12.25}}})
    events = EventAccumulator(str(tmp_path / "run" / "logs" / "tensorboard"))
    events.Reload()
    (accuracy,) = events.Scalars("eval/vqa-rad/closed_accuracy")
    (drop,) = events.Scalars("eval/vqa-rad/image_ablation/drop/closed_accuracy")
    assert (accuracy.step, accuracy.value, drop.value) == (4, 61.5, 12.25)
    assert "eval/vqa-rad/benchmark" not in events.Tags()["scalars"]


def test_wandb_offline_run_holds_the_steps(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run, lines = train(tmp_path, "logging.trackers=[wandb]")
    assert not [line for line in lines if line.startswith("warning")], lines
    (history,) = (run / "logs" / "wandb").glob("wandb/offline-run-*/run-*.wandb")
    data = history.read_bytes()  # wandb's own record file: the keys are stored as text
    for key in (b"train/loss", b"train/lr", b"train/grad_norm", b"stage/instruct/last_loss", b"tracking-tiny"):
        assert key in data, key


def test_mlflow_local_store_holds_the_steps_and_the_recipe(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run, lines = train(tmp_path, "logging.trackers=[mlflow]", "logging.project=medzoo-tests")
    assert not [line for line in lines if line.startswith("warning")], lines
    client = MlflowClient(tracking_uri=f"file:{run / 'logs' / 'mlflow'}")
    (found,) = client.search_runs([client.get_experiment_by_name("medzoo-tests").experiment_id])
    history = client.get_metric_history(found.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [
        (step, pytest.approx(r["loss"])) for step, r in enumerate(logged(run), start=1)]
    assert found.data.params["stages.alignment.optimizer.lr"] == "0.002"
    assert found.info.run_name == "tracking-tiny"
