"""medzoo speed's GRPO rollout section on the tiny model with small settings: its keys and rows, the same number
of generated tokens on medzoo's and transformers' side, the step split's parts, the GRPO stage it picks or builds,
and ``--skip rollouts`` (figures are positive and finite, never compared with thresholds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from omegaconf import OmegaConf

from medzoo.app.speedbench.rollouts import (
    PARTS,
    generated_tokens,
    grpo_stage,
    render_rollouts,
    with_split_settings,
)


@pytest.fixture(scope="module")
def synth_root(synthetic_data):
    return synthetic_data(train=40, val=0, test=30)


def speed(*arguments: str):
    from medzoo.app.cli.main import cli

    result = CliRunner().invoke(cli, ["speed", "--json", "--no-gpu", *arguments], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


OTHER_SECTIONS = ("--skip", "training", "--skip", "inference", "--skip", "levers", "--skip", "busy")


def test_the_rollout_section_compares_like_with_like_and_splits_the_step(synth_root):
    report = speed(*OTHER_SECTIONS, "--steps", "2", "--warmup", "0", "--max-new-tokens", "3",
                   "-o", f"data.root={synth_root}")
    section = report["rollouts"]
    assert set(report) == {"environment", "rollouts", "gpu"}
    assert section["built"] and section["stage"] == "grpo-bench"
    assert (section["prompts"], section["group_size"], section["max_new_tokens"]) == (4, 4, 3)
    generation = section["generation"]
    assert generation["rows"] == 4 * 4
    # every row runs to its budget on both sides: the same tokens in each of the 2 timed rounds
    assert generation["medzoo"]["tokens"] == generation["transformers"]["tokens"] == 2 * 4 * 4 * 3
    for side in ("medzoo", "transformers"):  # timings are only checked to be numbers, never against a clock
        assert all(math.isfinite(v) for v in generation[side].values())
    assert generation["ratio"] == pytest.approx(
        generation["medzoo"]["tokens_per_s"] / generation["transformers"]["tokens_per_s"], rel=1e-2)
    split = section["split"]
    assert list(split["seconds"]) == list(PARTS) and list(split["shares"]) == list(PARTS)
    assert all(math.isfinite(seconds) for seconds in split["seconds"].values())
    assert sum(split["shares"].values()) == pytest.approx(1.0, abs=0.01)
    assert split["step_s"] == pytest.approx(sum(split["seconds"].values()), abs=1e-3)
    # the built stage has no KL term of its own: the bench measures the reference with one
    assert (split["stage_beta"], split["beta"], split["reference"]) == (0.0, 0.04, "copy")
    text = "\n".join(render_rollouts(section))
    assert "| medzoo | 96 |" in text and "| transformers | 96 |" in text
    assert "medzoo / transformers tokens/s:" in text and "| reference |" in text


def test_skip_rollouts_leaves_the_section_out(tmp_path):
    report = speed(*OTHER_SECTIONS, "--skip", "rollouts", "-o", f"data.root={tmp_path / 'never-made'}")
    assert "rollouts" not in report
    assert not (tmp_path / "never-made").exists(), "no data synthesised when every data section is skipped"


def test_a_recipes_own_grpo_stage_is_the_one_measured():
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.recipes.schema import StageConfig

    recipe = load_recipe("tiny").config
    stage, built = grpo_stage(recipe)
    assert built and OmegaConf.to_container(stage.objective)["rewards"] == {"box-iou": 1.0}
    assert [d["path"].rsplit("/", 1)[-1] for d in stage.datasets] == ["rec_train.json"]
    own = OmegaConf.merge(OmegaConf.structured(StageConfig), {
        "name": "mine", "objective": {"name": "grpo", "group_size": 3, "rewards": {"token-f1": 1.0}}})
    recipe.stages = [*recipe.stages, own]
    stage, built = grpo_stage(recipe)
    assert not built and stage.name == "mine"
    timed, own_beta = with_split_settings(stage, 3)
    assert own_beta == 0.0 and timed.max_steps == 3
    assert OmegaConf.to_container(timed.objective) == {"name": "grpo", "group_size": 3, "rewards": {"token-f1": 1.0},
                                                       "beta": 0.04, "rollouts": {}}
    with_kl = OmegaConf.merge(OmegaConf.structured(StageConfig), {
        "name": "kl", "objective": {"name": "grpo", "beta": 0.2, "rewards": {"token-f1": 1.0},
                                    "rollouts": {"backend": "vllm", "mode": "colocate"}}})
    timed = with_split_settings(with_kl, 1)[0]
    assert timed.objective.beta == 0.2 and OmegaConf.to_container(timed.objective.rollouts) == {"backend": "engine"}


def test_generated_tokens_count_up_to_the_first_end_of_sequence():
    new = torch.tensor([[5, 6, 2, 9, 9], [5, 6, 7, 8, 9], [2, 1, 1, 1, 1]])
    assert generated_tokens(new, eos=2) == 3 + 5 + 1
    assert generated_tokens(new, eos=None) == 15


def test_a_comparison_that_cannot_run_is_reported_with_its_reason():
    split = {"step_s": 1.0, "seconds": dict.fromkeys(PARTS, 0.25), "shares": dict.fromkeys(PARTS, 0.25),
             "beta": 0.1, "stage_beta": 0.1, "reference": "adapters_off"}
    section = {"stage": "grpo", "built": False, "prompts": 2, "group_size": 2, "temperature": 1.0, "top_p": 0.9,
               "max_new_tokens": 8, "batch_rows": 4, "warmup": 0, "steps": 1, "split": split,
               "generation": {"status": "not measured: transformers' Llava reads one fixed-size picture"}}
    text = "\n".join(render_rollouts(section))
    assert "generation comparison not measured: transformers' Llava reads one fixed-size picture" in text
    assert "reference: adapters_off)" in text and "| update | 0.25 | 0.25 |" in text
