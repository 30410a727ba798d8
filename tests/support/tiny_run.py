"""A tiny two-stage run trained in this process, for the tracking and plotting tests."""

from __future__ import annotations

import json
from pathlib import Path

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
    from medzoo.app.training import train_run
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.testing import single_thread

    config = load_recipe(write_recipe(tmp_path / "data"), list(overrides)).config
    lines: list[str] = []
    with single_thread():
        train_run(config, tmp_path / "run", echo=lambda *parts, **_: lines.append(" ".join(map(str, parts))))
    return tmp_path / "run", lines


def logged(run: Path) -> list[dict]:
    """Every stage's metrics.jsonl records, in run order."""
    return [json.loads(line) for stage in sorted(run.glob("[0-9][0-9]-*"))
            for line in (stage / "metrics.jsonl").read_text().splitlines()]
