"""``medzoo speed`` on a tiled recipe: the resolution section (app/speedbench/resolution.py) times the tiled
model's training step against its fixed-size twin's on the same micro-batches in one process, with the image-token
counts and the ratios."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from medzoo.core.errors import MedzooError

#: the tiny recipe's 64-px tower, tiled over 1 x 2, 2 x 1 and 2 x 2 crops
GRID = "model.vision.options.image_grid_pinpoints=[[64, 128], [128, 64], [128, 128]]"


def test_speed_reports_the_tiled_and_fixed_size_image_tokens_and_step_times(synthetic_data):
    from medzoo.app.cli.main import cli

    root = synthetic_data(train=8, val=0, test=0)
    result = CliRunner().invoke(cli, [
        "speed", "--json", "--steps", "1", "--warmup", "0", "--no-gpu", "--skip", "inference", "--skip", "rollouts", "--skip", "levers",
        "-o", f"data.root={root}", "-o", "stages.1.micro_batch_size=4", "-o", GRID,
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "training" not in report and "busy" not in report  # transformers' Llava cannot hold a tiled model
    section = report["resolution"]
    tokens = section["image_tokens_per_image"]
    assert tokens["fixed"] == 16 and tokens["tiled"] > 16  # the thumbnail's 16 plus the grid's
    assert tokens["ratio"] == pytest.approx(tokens["tiled"] / tokens["fixed"], rel=1e-3)
    assert section["pictures_per_image"]["fixed"] == 1 and section["pictures_per_image"]["tiled"] >= 3
    assert all(section["step_s"][name] > 0 for name in ("tiled", "fixed"))
    assert section["step_time_ratio"] == pytest.approx(section["step_s"]["tiled"] / section["step_s"]["fixed"],
                                                       rel=1e-2)


def test_the_resolution_section_needs_a_tiled_recipe():
    from medzoo.app.speedbench.resolution import run_resolution_bench
    from medzoo.core.recipes.loading import load_recipe

    with pytest.raises(MedzooError, match="image_grid_pinpoints is not set"):
        run_resolution_bench(load_recipe("tiny").config)
