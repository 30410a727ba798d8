"""Curriculum training on tiny models: losses fall, kill -9 + --resume gives the uninterrupted weights,
LoRA adapters save in PEFT format and merge to the same logits (Mistral base included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from support import hang_at_checkpoint
from support.hang_guard import SUBPROCESS_HANG_S, wait_for
from support.in_process import medzoo_here

from medzoo.testing import TINY_MODEL

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 20)}


def make_dataset(root: Path, n: int = 48) -> Path:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    names = list(COLOURS)
    for i in range(n):
        colour = names[i % len(names)]
        Image.new("RGB", (32, 32), COLOURS[colour]).save(images / f"{i}.png")
        records.append({
            "id": f"r{i}",
            "image": f"{i}.png",
            "answer_type": "OPEN",
            "question_type": "colour",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is the square?"},
                {"from": "gpt", "value": f"The square is {colour}."},
            ],
        })
    path = root / "train.json"
    path.write_text(json.dumps(records))
    return path


def stage(name: str, role: str, data: Path, tuning: dict, lr: float, steps: int, template: str | None = None) -> dict:
    return {
        "name": name, "role": role, "template": template,
        # LLaVA-Med test.json layout, read by the med-vqa reader
        "datasets": [{"name": "med-vqa", "path": str(data), "image_root": str(data.parent / "images"),
                      "options": {"split": "all"}}],
        "tuning": tuning, "optimizer": {"lr": lr}, "max_steps": steps, "global_batch_size": 8,
        "micro_batch_size": 4, "max_length": 128, "precision": "fp32", "seed": 7, "save_every_steps": 2,
        "schedule": {"warmup_ratio": 0.1},
    }


def write_recipe(tmp_path: Path, steps: int = 6, language_tuning: str = "full") -> Path:
    data = make_dataset(tmp_path / "data")
    recipe = {
        "name": "test-tiny",
        "model": TINY_MODEL,
        "stages": [
            stage("alignment", "alignment", data, {"vision": "frozen", "connector": "full", "language": "frozen"},
                  2e-3, steps),
            stage("instruct", "instruct", data,
                  {"vision": "frozen", "connector": "full", "language": language_tuning,
                   "options": {"language": {"r": 4, "alpha": 8}} if language_tuning == "lora" else {}},
                  1e-3, steps),
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def medzoo(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The console script in a process of its own (the kill test's runs; the others run in this process)."""
    return subprocess.run([sys.executable, "-m", "medzoo.app.cli", *args], capture_output=True, text=True,
                          timeout=SUBPROCESS_HANG_S, **kwargs)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    weights = {}
    for file in sorted((run_dir / "final").rglob("*.safetensors")):
        for key, value in load_file(str(file)).items():
            weights[f"{file.name}:{key}"] = value
    return weights


def test_two_stages_train_and_loss_falls(tmp_path):
    recipe = write_recipe(tmp_path, steps=8)
    result = medzoo_here("train", str(recipe), "--output-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [s["stage"] for s in run["stages"]] == ["alignment", "instruct"]
    for summary in run["stages"]:
        assert summary["last_loss"] < summary["first_loss"], summary
    for stage_dir in ("01-alignment", "02-instruct"):
        lines = (tmp_path / "run" / stage_dir / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 8 and {"loss", "lr", "samples_per_s"} <= set(json.loads(lines[0]))
        assert (tmp_path / "run" / stage_dir / "loss.png").stat().st_size > 0
    from medzoo.core.model.multimodal import MultimodalModel

    model = MultimodalModel.from_pretrained(str(tmp_path / "run" / "final"))
    assert model.num_image_tokens == 16


#: the killed run stops while publishing the instruct stage's step-4 checkpoint (of 6 steps, one every 2), so its
#: resume starts from step 2
KILL_AT, RESUME_FROM = 4, 2


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def test_kill_and_resume_reproduces_uninterrupted_weights(tmp_path):
    """Bit for bit at a fixed thread count: the CPU thread governor follows the machine's load, and a different
    intra-op thread count changes the order of floating-point sums (docs/reliability.md, section 1)."""
    recipe = write_recipe(tmp_path, steps=6)
    fixed = {"env": {**os.environ, "MEDZOO_THREADS": "2"}}
    reference = medzoo("train", str(recipe), "--output-dir", str(tmp_path / "reference"), **fixed)
    assert reference.returncode == 0, reference.stderr[-2000:]

    run_dir = tmp_path / "killed"
    checkpoints = run_dir / "02-instruct" / "checkpoints"
    ready, log = tmp_path / "killed.hung", tmp_path / "killed.stderr"
    tests_dir = [str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**fixed["env"], "PYTHONPATH": os.pathsep.join(tests_dir),
           hang_at_checkpoint.TARGET: str(checkpoints / checkpoint_name(KILL_AT)), hang_at_checkpoint.READY: str(ready)}
    with open(log, "w") as stderr:  # the run stops for good while publishing its step-KILL_AT checkpoint
        process = subprocess.Popen(
            [sys.executable, "-m", hang_at_checkpoint.__name__, "train", str(recipe), "--output-dir", str(run_dir)],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True, env=env,
        )
        wait_for(lambda: ready.exists() or process.poll() is not None,
                 f"the run reaching its instruct step-{KILL_AT} checkpoint (its log: {log})")
        assert process.poll() is None, f"training ended before it was killed: {log.read_text()[-2000:]}"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (run_dir / "final").exists()
    assert (checkpoints / "latest").read_text().strip() == checkpoint_name(RESUME_FROM)
    assert (checkpoints / f".{checkpoint_name(KILL_AT)}").is_dir(), "killed while publishing the next checkpoint"

    resumed = medzoo("train", str(recipe), "--output-dir", str(run_dir), "--resume", **fixed)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resume from" in resumed.stdout and "already complete" in resumed.stdout
    expected, actual = final_weights(tmp_path / "reference"), final_weights(run_dir)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_lora_adapters_are_peft_format_and_merge_to_same_logits(tmp_path):
    recipe = write_recipe(tmp_path, steps=3, language_tuning="lora")
    result = medzoo_here("train", str(recipe), "--output-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    final = tmp_path / "run" / "final"
    adapter = final / "adapters" / "language"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4
    assert all(k.startswith("base_model.model.") for k in load_file(str(adapter / "adapter_model.safetensors")))

    merged_dir = tmp_path / "merged"
    merged = medzoo_here("merge-lora", str(final), "--output", str(merged_dir))
    assert merged.returncode == 0, merged.stderr[-2000:]
    from medzoo.core.model.multimodal import MultimodalModel
    from medzoo.plugins.tuning.lora import has_lora

    with_adapters = MultimodalModel.from_pretrained(str(final))
    plain = MultimodalModel.from_pretrained(str(merged_dir))
    assert has_lora(with_adapters.language.model) and not has_lora(plain.language.model)
    assert type(plain.language.model).__name__.startswith("Mistral")
    ids = torch.tensor([[1] + [with_adapters.markup.fill_id] * 16 + [5, 6, 7]])
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a = with_adapters(input_ids=ids, pixel_values=pixels).logits
        b = plain(input_ids=ids, pixel_values=pixels).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_non_finite_loss_stops_with_step_and_batch_ids(tmp_path, monkeypatch):
    from medzoo.core.errors import TrainingError

    recipe_path = write_recipe(tmp_path, steps=2)
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.run import train_recipe

    config = load_recipe(str(recipe_path), ["stages.0.optimizer.lr=1e30", "stages.0.max_grad_norm=0"]).config
    with pytest.raises(TrainingError, match=r"non-finite loss .* at step \d+, batch ids \['r"):
        train_recipe(config, tmp_path / "nan-run", echo=lambda *_: None)
