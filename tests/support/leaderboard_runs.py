"""Small fake run folders for the html leaderboard tests: metrics.json files (one with image-ablation scores),
``NN-<stage>`` folders and tiny curve PNGs under ``plots/``; nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

STAGES = ("pretrain", "instruct")


def curve_png(path: Path, colour: tuple[int, int, int]) -> Path:
    """A 60x35 PNG standing in for a training curve (the real ones are 600x350)."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (60, 35), "white")
    ImageDraw.Draw(image).line([(2, 5), (20, 20), (58, 30)], fill=colour, width=2)
    image.save(path)
    return path


def fake_run(root: Path, name: str, model: str, metrics: dict[str, dict], plots: bool = True) -> Path:
    """``root/name`` with ``run.json`` naming ``model``, ``eval/<benchmark>/metrics.json`` per entry and, with
    ``plots``, a stage folder and a loss and lr PNG for each of ``STAGES``."""
    run_dir = root / name
    for benchmark, values in metrics.items():
        folder = run_dir / "eval" / benchmark
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"benchmark": benchmark, **values}))
    (run_dir / "run.json").write_text(json.dumps({"model": {"name": model}}))
    if plots:
        for index, stage in enumerate(STAGES, start=1):
            (run_dir / f"{index:02d}-{stage}").mkdir()
            curve_png(run_dir / "plots" / f"{stage}-loss.png", (46, 111, 219))
            curve_png(run_dir / "plots" / f"{stage}-lr.png", (247, 144, 9))
    return run_dir


def fake_runs(root: Path) -> list[Path]:
    """Two runs with curves (the first also scored with noise images) and one without curves."""
    ablated = {"kind": "noise", "metrics": {"open_recall": 20.0, "closed_accuracy": 52.5}}
    return [
        fake_run(root, "run-a", "tiny-llava-med", {
            "vqa-rad": {"split": "test", "open_recall": 41.5, "closed_accuracy": 70.25, "n": 451,
                        "image_ablation": ablated},
            "slake": {"split": "test", "open_recall": 60.0, "closed_accuracy": 75.0},
        }),
        fake_run(root, "run-b", "tiny-biomedclip", {"vqa-rad": {"open_recall": 55.0, "closed_accuracy": 60.0}}),
        fake_run(root, "run-c", "no-curves", {"vqa-rad": {"open_recall": 30.0, "closed_accuracy": 64.0}},
                 plots=False),
    ]  # fmt: skip
