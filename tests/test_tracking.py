"""Experiment tracking through accelerate's trackers: a tiny two-stage run's TensorBoard events, read back with
TensorBoard's own EventAccumulator, hold every step's loss, learning rate and gradient norm against the run's
global step, the stage summaries and the resolved recipe as hparams; ``trackers: []`` writes none; an unknown
tracker is a one-line RecipeError; a tracker that cannot start (or fails mid-run) is one warning and the run
finishes; without TensorBoard the default is no tracker, said once; wandb (offline) and MLflow (a local file
store) where installed."""

from __future__ import annotations

import json

import pytest
from support.tiny_run import STEPS, logged, train, write_recipe


def test_two_stage_run_writes_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run, lines = train(tmp_path, "logging.trackers=[tensorboard]", "stages.instruct.optimizer.module_lr.connector=5e-3")
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
    connector = events.Scalars("train/lr/connector")  # the instruct stage's module_lr group, beside the language's
    assert [s.step for s in connector] == list(range(STEPS + 1, 2 * STEPS + 1))
    assert [s.value for s in connector] == pytest.approx([r["lr/connector"] for r in records[STEPS:]])
    assert [r["lr/connector"] for r in records[STEPS:]] == pytest.approx([5 * r["lr"] for r in records[STEPS:]])
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


def test_without_tensorboard_the_default_is_no_tracker_said_once(tmp_path, monkeypatch):
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.tracking import RunTracking, session

    monkeypatch.setattr(session, "tensorboard_installed", lambda: False)  # as where it is not installed
    recipe = load_recipe(write_recipe(tmp_path / "data")).config
    lines: list[str] = []
    tracking = RunTracking.for_recipe(recipe, echo=lines.append)
    tracking.start(tmp_path / "run", recipe)
    tracking.start(tmp_path / "run", recipe)
    tracking.log_step({"step": 1, "loss": 1.0, "lr": 1e-3})
    tracking.finish()
    assert lines == ["tracking: tensorboard is not installed, so no experiment tracker "
                     "(metrics.jsonl and plots/ hold the curves)"]
    assert not (tmp_path / "run" / "logs").exists()


def test_a_tracker_failing_mid_run_is_dropped_with_one_warning(tmp_path):
    from accelerate.tracking import GeneralTracker
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.tracking import RunTracking

    class Broken(GeneralTracker):
        name, requires_logging_directory, tracker = "broken", False, None
        calls = 0

        def log(self, values, step=None, **kwargs):
            Broken.calls += 1
            raise ConnectionError("the tracking server went away")  # a full disk stops the run instead (below)

    recipe = load_recipe(write_recipe(tmp_path / "data"), ["logging.trackers=[tensorboard]"]).config
    lines: list[str] = []
    with RunTracking.for_recipe(recipe, echo=lines.append) as tracking:
        tracking.start(tmp_path / "run", recipe)
        tracking.trackers.append(("broken", Broken()))
        for step in (1, 2):
            tracking.log_step({"step": step, "loss": 2.0 / step, "lr": 1e-3})
    assert Broken.calls == 1 and lines[1:] == [
        "warning: tracker broken failed (ConnectionError: the tracking server went away); the run continues without it"]
    events = EventAccumulator(str(tmp_path / "run" / "logs" / "tensorboard"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("train/loss")] == [(1, 2.0), (2, 1.0)]


def test_a_tracker_on_a_full_disk_stops_the_run_with_the_storage_line(tmp_path):
    from accelerate.tracking import GeneralTracker

    from medzoo.core.file_io.storage import StorageError
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.tracking import RunTracking

    class Full(GeneralTracker):
        name, requires_logging_directory, tracker = "full", False, None
        logging_dir = str(tmp_path / "run" / "logs" / "full")

        def log(self, values, step=None, **kwargs):
            raise OSError(28, "No space left on device")

    recipe = load_recipe(write_recipe(tmp_path / "data"), ["logging.trackers=[]"]).config
    with RunTracking.for_recipe(recipe, echo=lambda line: None) as tracking:
        tracking.start(tmp_path / "run", recipe)
        tracking.trackers.append(("full", Full()))
        with pytest.raises(StorageError) as raised:
            tracking.log_step({"step": 1, "loss": 2.0, "lr": 1e-3})
    assert str(raised.value).startswith(f"{tmp_path / 'run' / 'logs' / 'full'}: no space left on the device (ENOSPC)")
    assert tracking.trackers == []
