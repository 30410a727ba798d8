"""GRPO: a stage on the colour model with its rollouts from medzoo's engine, the rows and advantages the objective
builds, the gradient against the policy-gradient formula by hand, seeded rollouts that do not depend on how they
are batched, resume after a kill (also mid-cycle with several updates per rollout batch) giving the weights of an
uninterrupted run, the KL reference, and the options' one-line refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from medzoo import Reward, hookimpl
from medzoo.core.errors import RecipeError
from medzoo.core.interfaces.conversation import Message
from medzoo.core.interfaces.dataset import Record
from medzoo.core.interfaces.reward import RewardContext
from medzoo.core.interfaces.rollout_backend import RolloutCompletion
from medzoo.core.plugin_system.manager import components, register_plugin, unregister_plugin
from medzoo.testing import TINY_MODEL

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 20)}


class ColourNamed(Reward):
    """1 when the completion names the reference colour, 0 otherwise (a test reward)."""

    name = "colour-named"

    def score(self, completion, context):
        colour = next(c for c in COLOURS if c in context.reference.lower())
        return 1.0 if colour in completion.lower() else 0.0


class Characters(Reward):
    """The completion's characters / 10 (varies between random completions of the same length)."""

    name = "test-characters"

    def score(self, completion, context):
        return len(completion) / 10.0


class TestRewards:
    @hookimpl
    def register_rewards(self, register):
        register("colour-named", ColourNamed, description="names the reference colour (test)")
        register("test-characters", Characters, description="characters / 10 (test)")


@pytest.fixture(autouse=True)
def test_rewards():
    plugin = TestRewards()
    register_plugin(plugin, name="test-rewards")
    yield
    unregister_plugin(plugin)


def grpo(**options):
    options.setdefault("rewards", {"colour-named": 1.0})
    return components().get("objective", "grpo").factory(**options)


def png(root: Path, name: str, colour: str) -> str:
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), COLOURS[colour]).save(root / "images" / name)
    return name


def colour_file(root: Path, n: int = 8) -> Path:
    names = list(COLOURS)
    rows = [{"id": f"q{i}", "image": png(root, f"{i}.png", names[i % 4]),
             "conversations": [{"from": "human", "value": "<image>\nWhat colour is the square?"},
                               {"from": "gpt", "value": f"The square is {names[i % 4]}."}]}
            for i in range(n)]
    path = root / "colours.json"
    path.write_text(json.dumps(rows))
    return path


def stage_config(data: Path, objective: dict, tuning: dict, steps: int = 2, **extra):
    from medzoo.core.recipes.schema import StageConfig

    spec = {"name": "grpo", "role": "preference", "objective": {"name": "grpo", "group_size": 4,
                                                                "max_completion_length": 6, **objective},
            "datasets": [{"name": "llava-json", "path": str(data), "image_root": str(data.parent / "images")}],
            "tuning": tuning, "optimizer": {"lr": 1e-3}, "max_steps": steps, "global_batch_size": 4,
            "micro_batch_size": 8, "max_length": 128, "precision": "fp32", "seed": 5, **extra}
    return OmegaConf.merge(OmegaConf.structured(StageConfig), spec)


LORA = {"vision": "frozen", "connector": "frozen", "language": "lora", "options": {"language": {"r": 4, "alpha": 8}}}
FULL = {"vision": "frozen", "connector": "frozen", "language": "full"}


def tiny_model():
    from medzoo.core.model.build import build_model

    torch.manual_seed(0)
    return build_model(TINY_MODEL)


def train(model, stage, folder: Path, resume: bool = False, lines: list[str] | None = None):
    from medzoo.core.training.distributed import cpu_accelerator
    from medzoo.core.training.trainer import train_stage

    echo = (lines.append if lines is not None else (lambda *a, **k: None))
    return train_stage(model, stage, folder, cpu_accelerator(), "error", resume, echo)


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- a stage ----------------------------------------------------------------------------------------------------

def test_a_grpo_stage_logs_rewards_groups_and_policy_metrics(tmp_path):
    data = colour_file(tmp_path)
    model = tiny_model()
    before = weights(model)
    train(model, stage_config(data, {"rewards": {"colour-named": 1.0, "test-characters": 0.5}}, FULL), tmp_path / "s")
    log = records(tmp_path / "s")
    assert [r["step"] for r in log] == [1, 2]
    for key in ("reward", "rewards/colour-named", "rewards/test-characters", "reward/std", "groups/equal",
                "completions/length", "completions/truncated", "policy/clip_ratio"):
        assert all(math.isfinite(r[key]) for r in log), key
    assert all(0.0 <= r["groups/equal"] <= 1.0 for r in log)
    # with one update per rollout batch the ratio is 1: nothing is clipped
    assert all(r["policy/clip_ratio"] == 0.0 for r in log)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- the objective's rows and gradient ----------------------------------------------------------------------------

def test_rollout_rows_carry_prompt_and_completion_with_group_relative_advantages(tmp_path):
    from medzoo.core.inference import processor_for

    model = tiny_model()
    processor = processor_for(model)
    objective = grpo(group_size=3, rewards={"test-characters": 1.0})
    record = Record("r1", [Message("user", "<image>\nWhat colour is the square?"), Message("assistant", "Red.")],
                    tmp_path / png(tmp_path, "a.png", "red"))
    sample = objective.encode(processor, record, 128)
    assert sample.context.reference == "Red." and sample.context.question == "What colour is the square?"
    group = [RolloutCompletion((5, 6), "ab", "stop"), RolloutCompletion((7,), "abcd", "length"),
             RolloutCompletion((8, 9, 10), "abcdef", "stop")]
    rows, metrics = objective.rollout_rows([sample], [group], lambda t: t)
    assert [r.sample.input_ids[len(sample.prompt):] for r in rows] == [[5, 6], [7], [8, 9, 10]]
    assert all(r.sample.labels[: len(sample.prompt)] == [-100] * len(sample.prompt) for r in rows)
    rewards = torch.tensor([0.2, 0.4, 0.6])
    expected = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
    assert [r.advantage for r in rows] == pytest.approx(expected.tolist(), rel=1e-5)
    assert metrics["reward"] == pytest.approx(0.4) and metrics["groups/equal"] == 0.0
    assert metrics["completions/truncated"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("normalisation", ["grpo", "dapo", "dr_grpo"])
def test_the_gradient_is_the_policy_gradient_by_hand(tmp_path, normalisation):
    """With one update per rollout batch the ratio is 1 and the loss's gradient is
    -sum_rows A_r x (row weight) x sum_t grad log p(t): the row weight 1 / (|row| N) for grpo, 1 / all tokens for
    dapo, 1 / (N x budget) for dr_grpo."""
    from medzoo.core.inference import processor_for
    from medzoo.core.training.log_probs import token_log_probs

    model = tiny_model()
    processor = processor_for(model)
    objective = grpo(group_size=2, rewards={"test-characters": 1.0}, normalisation=normalisation,
                     max_completion_length=5)
    record = Record("r1", [Message("user", "Say something."), Message("assistant", "Red.")])
    sample = objective.encode(processor, record, 128)
    rows, _ = objective.rollout_rows([sample], [[RolloutCompletion((11, 12, 13), "abc", "stop"),
                                                 RolloutCompletion((14,), "a", "stop")]], lambda t: t)
    batch = objective.collate(rows, [None, None], model.tokenizer.pad_token_id)
    normaliser = objective.rollout_normaliser([3, 1])
    model.train()
    objective.loss(model, batch, normaliser).loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    log_probs, owner = token_log_probs(model, {k: v for k, v in batch.items() if k not in ("advantages",)})
    lengths, advantages = torch.tensor([3.0, 1.0]), batch["advantages"]
    weight = {"grpo": 1 / (lengths * 2), "dapo": torch.full((2,), 1 / 4), "dr_grpo": torch.full((2,), 1 / 10)}
    (-(advantages[owner] * weight[normalisation][owner] * log_probs).sum()).backward()
    for name, parameter in model.named_parameters():
        if name in got:
            assert torch.allclose(got[name], parameter.grad, atol=1e-6), name


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_log_probabilities_are_those_of_the_sampling_temperature(temperature):
    """The ratio and the KL term use log-softmax(logits / temperature) of each completion token, the distribution
    the rollouts were drawn from (TRL's GRPOTrainer: ``logits / self.temperature``, huggingface/trl
    trl/trainer/grpo_trainer.py at v1.16.0, ``_get_per_token_logps_and_entropies``)."""
    from medzoo.core.inference import processor_for

    model = tiny_model().eval()
    objective = grpo(group_size=2, rewards={"test-characters": 1.0}, temperature=temperature,
                     max_completion_length=5)
    record = Record("r1", [Message("user", "Say something."), Message("assistant", "Red.")])
    sample = objective.encode(processor_for(model), record, 128)
    rows, _ = objective.rollout_rows([sample], [[RolloutCompletion((11, 12, 13), "abc", "stop"),
                                                 RolloutCompletion((14,), "a", "stop")]], lambda t: t)
    batch = objective.collate(rows, [None, None], model.tokenizer.pad_token_id)
    got, owner = objective.behaviour_log_probs(model, batch)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    prompt = len(sample.prompt)
    expected = []
    for row, tokens in enumerate([(11, 12, 13), (14,)]):
        for offset, token in enumerate(tokens):
            position = prompt + offset - 1  # the logits that predict the token
            expected.append(torch.log_softmax(logits[row, position] / temperature, -1)[token].item())
    assert owner.tolist() == [0, 0, 0, 1]
    assert got.tolist() == pytest.approx(expected, abs=1e-5)


# -- seeded rollouts, resume ----------------------------------------------------------------------------------------

def test_a_completion_does_not_depend_on_the_batch_it_was_generated_in(tmp_path):
    from medzoo.core.inference import processor_for
    from medzoo.core.training.engine_rollouts import EngineRollouts

    model = tiny_model()
    processor = processor_for(model)
    objective = grpo(group_size=3, max_completion_length=6)
    samples = [objective.encode(processor, Record(f"r{i}", [Message("user", "Hi" + " there" * i),
                                                             Message("assistant", "Red.")]), 128) for i in range(3)]
    requests = objective.rollout_requests(samples, [11, 22, 33], 128)
    together = EngineRollouts(batch_rows=9).generate(model, requests)
    alone = EngineRollouts(batch_rows=1).generate(model, requests)
    assert [[c.token_ids for c in g] for g in together] == [[c.token_ids for c in g] for g in alone]
    assert len({c.token_ids for g in together for c in g}) > 1  # sampled, not one greedy answer
    again = EngineRollouts(batch_rows=4).generate(model, objective.rollout_requests(samples[1:2], [22], 128))
    assert [c.token_ids for c in again[0]] == [c.token_ids for c in together[1]]


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("updates", [1, 2])
def test_a_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch, updates):
    """Stopped right after the step-1 checkpoint (mid-cycle when two updates share a rollout batch), the resumed
    run ends with the uninterrupted run's weights and log."""
    from medzoo.core.training import trainer

    data = colour_file(tmp_path)
    stage = stage_config(data, {"rewards": {"test-characters": 1.0}, "updates_per_rollout": updates}, FULL,
                         steps=3, save_every_steps=1)
    whole = train(tiny_model(), stage, tmp_path / "whole").model
    saved = trainer.save_due_checkpoint

    def stop_after_first_checkpoint(run, done):
        saved(run, done)
        if done == 1:
            raise Interrupted

    monkeypatch.setattr(trainer, "save_due_checkpoint", stop_after_first_checkpoint)
    with pytest.raises(Interrupted):
        train(tiny_model(), stage, tmp_path / "cut")
    monkeypatch.setattr(trainer, "save_due_checkpoint", saved)
    if updates > 1:
        assert sorted(p.name for p in (tmp_path / "cut" / "rollouts").iterdir()) == ["cycle-000000-rank0.pt"]
    resumed = train(tiny_model(), stage, tmp_path / "cut", resume=True).model
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert [r["loss"] for r in records(tmp_path / "cut")] == [r["loss"] for r in records(tmp_path / "whole")]
    if updates > 1:  # the cycle's two steps train on one rollout batch, the third on a new one
        log = records(tmp_path / "whole")
        assert log[0]["reward"] == log[1]["reward"] and log[0]["reward/std"] == log[1]["reward/std"]


# -- the reference ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tuning", "mode"), [(LORA, "adapters_off"), (FULL, "copy")])
def test_beta_forms_a_reference_and_logs_the_kl(tmp_path, tuning, mode):
    data = colour_file(tmp_path)
    lines: list[str] = []
    stage = stage_config(data, {"rewards": {"test-characters": 1.0}, "beta": 0.05}, tuning, steps=3,
                         optimizer={"lr": 0.05}, schedule={"name": "constant"})
    train(tiny_model(), stage, tmp_path / "s", lines=lines)
    log = records(tmp_path / "s")
    expected = "LoRA adapters switched off" if mode == "adapters_off" else "a frozen copy of the starting model"
    assert any(expected in line for line in lines)
    assert log[0]["policy/kl"] == pytest.approx(0.0, abs=1e-6)  # the policy is the reference at the first step
    assert log[2]["policy/kl"] > 0.0


def test_a_precomputed_reference_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^reference: 'precomputed' is not allowed; expected one of auto, "
                                         r"adapters_off, copy$"):
        grpo(beta=0.1, reference="precomputed")


# -- options --------------------------------------------------------------------------------------------------------

def test_one_reward_serves_twice_under_two_names():
    from medzoo.core.model.processor import EncodedSample
    from medzoo.plugins.objectives.grpo import PromptSample

    objective = grpo(rewards={"chars": {"reward": "test-characters", "weight": 1.0},
                              "named": {"reward": "colour-named", "weight": 2.0}, "test-characters": 0.5})
    assert {name: (reward.name, weight) for name, (reward, weight) in objective.rewards.items()} == {
        "chars": ("test-characters", 1.0), "named": ("colour-named", 2.0), "test-characters": ("test-characters", 0.5)}
    assert objective.describe()["rewards"]["chars"] == {"weight": 1.0, "reward": "test-characters"}
    prompt = PromptSample(EncodedSample([1, 2], [-100, -100], None), [], None, RewardContext("r", "Red."), "r")
    group = [RolloutCompletion((5,), "red", "stop"), RolloutCompletion((6, 7), "blue!", "stop"),
             RolloutCompletion((8,), "x", "stop"), RolloutCompletion((9,), "red red", "stop")]
    _, metrics = objective.rollout_rows([prompt], [group], lambda tensor: tensor)
    assert metrics["rewards/chars"] == pytest.approx((0.3 + 0.5 + 0.1 + 0.7) / 4)
    assert metrics["rewards/named"] == pytest.approx(0.5)
    assert metrics["reward"] == pytest.approx(1.5 * metrics["rewards/chars"] + 2 * 0.5)


@pytest.mark.parametrize(("options", "message"), [
    ({"group_size": 1}, r"^group_size: 1 is out of range; expected an integer >= 2$"),
    ({"max_completion_length": 0}, r"^max_completion_length: 0 is out of range; expected an integer >= 1$"),
    ({"rewards": {"colour-named": float("nan")}}, r"^rewards.colour-named.weight: nan is not allowed; expected a "
                                                  r"finite number$"),
    ({"normalisation": "bnpo"}, r"^normalisation: 'bnpo' is not allowed"),
    ({"scale_rewards": "rank"}, r"^scale_rewards: 'rank' is not allowed"),
    ({"clip_low": 1.5}, r"^clip_low: 1.5 is out of range"),
    ({"updates_per_rollout": 0}, r"^updates_per_rollout: 0 is out of range"),
    ({"rewards": {}}, r"^rewards: \{\} is not allowed; expected a mapping of reward names to weights"),
    ({"rewards": {"no-such-reward": 1.0}}, r"^rewards.no-such-reward: unknown reward 'no-such-reward'"),
    ({"rewards": {"colour-named": "high"}}, r"^rewards.colour-named.weight: 'high' is not allowed"),
    ({"rewards": {"colour-named": {"weight": 1.0, "bogus": 2}}}, r"^rewards.colour-named.bogus: reward .colour-named. takes no option .bogus.; expected one of \(none\)"),
    ({"rollouts": {"backend": "sglang"}}, r"^rollouts.backend: 'sglang' is not allowed"),
    ({"rewards": {"hit": {"reward": "no-such"}}}, r"^rewards.hit.reward: unknown reward 'no-such'"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(ValueError, match=message) as error:
        grpo(**options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("objective", "pattern"), [
    ("{name: grpo, rewards: {colour-named: 1.0}, group_size: 1}",
     r"stages\.grpo\.objective\.group_size: 1 is out of range; expected an integer >= 2$"),
    ("{name: grpo, rewards: {colour-nmed: 1.0}}",
     r"stages\.grpo\.objective\.rewards\.colour-nmed: unknown reward 'colour-nmed' \(did you mean"),
    ("{name: grpo, rewards: {colour-named: 1.0}, rollouts: {backend: engine, batch: 3}}",
     r"stages\.grpo\.objective\.rollouts\.batch: not an option of the engine backend; expected batch_rows$"),
])
def test_a_recipe_with_a_bad_grpo_option_fails_naming_the_key(tmp_path, objective, pattern):
    from medzoo.core.recipes.loading import load_recipe

    path = tmp_path / "bad.yaml"
    path.write_text("defaults: [tiny]\nname: bad\nstages:\n  - name: grpo\n    role: preference\n    datasets:\n"
                    f"      - {{name: llava-json, path: c.json}}\n    objective: {objective}\n")
    with pytest.raises(RecipeError) as raised:
        load_recipe(str(path))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert __import__("re").search(pattern, message), message
