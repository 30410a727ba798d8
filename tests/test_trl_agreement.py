"""medzoo's DPO and GRPO math equals TRL's, the field's reference implementation, run on the same log-probabilities,
rewards and settings: TRL's own trainer methods are called (tests/support/trl_harness.py), not re-typed.

Checked against TRL 1.16.0 (the PyPI release pinned in constraints.txt; ``trl/trainer/dpo_trainer.py`` sha256
9p8PePB5kKpaNhV9vIHCOyWbms2flCPxpuaXd0RvuS8, ``trl/trainer/grpo_trainer.py`` sha256
HD3CJT-zZTJpwR385PlG90IBpMtj4Ih6N-jju0o_VQM, as its wheel's RECORD names them):

- DPO: ``DPOTrainer._compute_loss`` against the ``dpo`` objective's loss over a step split into micro-batches, on
  one tiny bigram language model both sides run: losses, gradients and the logged rewards;
- GRPO advantages: ``GRPOTrainer._generate_and_score_completions`` (with a rollout function and a reward function
  that return given completions and rewards) against ``group_advantages``;
- GRPO loss: ``GRPOTrainer._compute_loss`` against ``per_token_policy_loss`` + ``reduce_policy_loss`` with the
  step's ``loss_normaliser``: values and gradients, over micro-batches and processes.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
import torch
import trl
from support.trl_harness import FusedHead, dpo_trainer, grpo_trainer, trl_advantages, trl_policy_loss
from torch import nn

from medzoo.core.model.processor import IGNORE_INDEX, EncodedSample
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.objectives.dpo import PreferenceSample
from medzoo.plugins.objectives.policy_losses import (
    group_advantages,
    loss_normaliser,
    per_token_policy_loss,
    reduce_policy_loss,
)

ROOT = Path(__file__).resolve().parents[1]
TRL_VERSION = "1.16.0"
#: sha256 (urlsafe base64, as in the wheel's RECORD) of the TRL files whose methods these tests call
TRL_FILES = {"trainer/dpo_trainer.py": "9p8PePB5kKpaNhV9vIHCOyWbms2flCPxpuaXd0RvuS8",
             "trainer/grpo_trainer.py": "HD3CJT-zZTJpwR385PlG90IBpMtj4Ih6N-jju0o_VQM"}
VOCAB = 11


def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(actual.detach().double(), expected.detach().double(), rtol=1e-5, atol=1e-6, msg=what)


def test_the_installed_trl_is_the_release_the_agreement_was_checked_against():
    """A TRL upgrade must re-run this file and move the pin, the constraint and the docs together."""
    assert trl.__version__ == TRL_VERSION
    assert f"trl=={TRL_VERSION}" in (ROOT / "constraints.txt").read_text().split()
    assert f"TRL {TRL_VERSION}" in (ROOT / "docs" / "dependencies.md").read_text()
    package = Path(trl.__file__).parent
    for name, digest in TRL_FILES.items():
        actual = base64.urlsafe_b64encode(hashlib.sha256((package / name).read_bytes()).digest()).rstrip(b"=")
        assert actual.decode() == digest, f"trl/{name} is not TRL {TRL_VERSION}'s"


# -- DPO --------------------------------------------------------------------------------------------------------

class Bigram(nn.Module):
    """A tiny language model: the logits after token ``t`` at position ``i`` are ``W[t] + P[i]``. medzoo reads its
    ``.logits``; TRL reads it through a fused LM head (per-token log-probabilities of the labelled next tokens)."""

    def __init__(self, seed: int, width: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(VOCAB, VOCAB, generator=generator))
        self.P = nn.Parameter(0.5 * torch.randn(width, VOCAB, generator=generator))

    def logits_of(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.W[input_ids] + self.P[: input_ids.shape[1]]

    def forward(self, input_ids, **_):
        return type("Output", (), {"logits": self.logits_of(input_ids)})()


def answer_sample(prompt: list[int], answer: list[int], sample_id: str) -> EncodedSample:
    return EncodedSample(prompt + answer, [IGNORE_INDEX] * len(prompt) + answer, None, False, sample_id)


#: (prompt, chosen, rejected) token ids: prompts and answers of different lengths, so rows are padded differently
PAIRS = [([1, 2, 3], [4, 5], [6, 7, 8, 9]),
         ([2, 3], [5, 6, 7], [8]),
         ([3, 1, 4, 1], [9, 2, 6, 5, 3], [5, 8]),
         ([7], [1, 1, 2], [3, 5, 8, 1, 3])]
SAMPLES = [PreferenceSample(answer_sample(p, c, f"p{i}"), answer_sample(p, r, f"p{i}"), f"p{i}")
           for i, (p, c, r) in enumerate(PAIRS)]
MICRO_BATCHES = ([0, 1, 2], [3])  # unequal on purpose: the step, not the micro-batch, normalises


def dpo(**options):
    return components().get("objective", "dpo").factory(**options)


def medzoo_dpo_step(objective, policy: Bigram, reference: Bigram) -> dict[str, float]:
    """The step's loss summed over its micro-batches (backward run) and its metrics, summed likewise."""
    normaliser = objective.normaliser(SAMPLES)
    totals: dict[str, float] = {}
    for rows in MICRO_BATCHES:
        samples = [SAMPLES[row] for row in rows]
        batch = objective.collate(samples, [None] * len(samples), pad_id=0)
        values = None if objective.reference_free else objective.reference_values(reference, batch)
        result = objective.loss(policy, batch, normaliser, scale=1.0, reference=values)
        result.loss.backward()
        for name, value in {"loss": result.loss, **result.metrics}.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach())
    return totals


def trl_dpo_batch(samples=SAMPLES) -> dict[str, torch.Tensor]:
    """TRL's DPO batch: chosen rows then rejected rows, right-padded, ``completion_mask`` on the answer tokens."""
    batch = dpo().collate(samples, [None] * len(samples), pad_id=0)
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "completion_mask": (batch["labels"] != IGNORE_INDEX).long()}


DPO_CASES = {
    # name: (medzoo options, TRL loss_type, TRL loss_weights)
    "sigmoid": ({"loss": "sigmoid", "beta": 0.1}, ["sigmoid"], None),
    "sigmoid-large-beta": ({"loss": "sigmoid", "beta": 2.0}, ["sigmoid"], None),
    "ipo": ({"loss": "ipo", "beta": 0.25}, ["ipo"], None),
    "sigmoid+sft": ({"loss": "sigmoid", "beta": 0.5, "preference_weight": 0.8, "sft_weight": 0.7},
                    ["sigmoid", "sft"], [0.8, 0.7]),
    "ipo+sft": ({"loss": "ipo", "beta": 0.1, "sft_weight": 1.5}, ["ipo", "sft"], [1.0, 1.5]),
}


@pytest.mark.parametrize("case", list(DPO_CASES))
def test_dpo_loss_gradient_and_rewards_equal_trls(case):
    options, loss_type, loss_weights = DPO_CASES[case]
    objective = dpo(**options)
    reference = Bigram(seed=1).requires_grad_(False)
    ours = Bigram(seed=0)
    metrics = medzoo_dpo_step(objective, ours, reference)

    theirs = Bigram(seed=0)
    trainer = dpo_trainer(FusedHead(theirs.logits_of), loss_type, options["beta"], loss_weights,
                          ref_model=FusedHead(reference.logits_of))
    loss = trainer._compute_loss(trainer.model, trl_dpo_batch(), return_outputs=False)
    loss.backward()

    close(torch.tensor(metrics["loss"]), loss, f"{case}: loss")
    close(ours.W.grad, theirs.W.grad, f"{case}: gradient")
    close(ours.P.grad, theirs.P.grad, f"{case}: gradient")
    logged = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    if options["loss"] == "sigmoid":
        # IPO's rewards differ by convention: medzoo's (like TRL's before its DPO refactor) are beta x the
        # per-token mean log-ratio IPO optimises; TRL 1.16 logs beta x the summed log-ratio for every loss type
        for ours_name, trl_name in [("rewards/chosen", "rewards/chosen"), ("rewards/rejected", "rewards/rejected"),
                                    ("rewards/margin", "rewards/margins"), ("rewards/accuracy", "rewards/accuracies"),
                                    ("logps/chosen", "logps/chosen"), ("logps/rejected", "logps/rejected")]:
            assert metrics[ours_name] == pytest.approx(logged[trl_name], rel=1e-5, abs=1e-6), ours_name


def test_reference_free_dpo_equals_trl_with_zero_reference_log_probabilities():
    """TRL 1.16 has no ``reference_free`` switch; its reference log-probabilities given as 0 (precomputed) are the
    reference that gives every answer the same probability, which is what medzoo's option compares with."""
    ours = Bigram(seed=0)
    metrics = medzoo_dpo_step(dpo(beta=0.3, reference_free=True), ours, reference=None)
    theirs = Bigram(seed=0)
    trainer = dpo_trainer(FusedHead(theirs.logits_of), ["sigmoid"], 0.3, precompute_ref_logps=True)
    batch = {**trl_dpo_batch(), "ref_chosen_logps": torch.zeros(len(SAMPLES)),
             "ref_rejected_logps": torch.zeros(len(SAMPLES))}
    loss = trainer._compute_loss(trainer.model, batch, return_outputs=False)
    loss.backward()
    close(torch.tensor(metrics["loss"]), loss, "reference-free loss")
    close(ours.W.grad, theirs.W.grad, "reference-free gradient")
    assert metrics["rewards/margin"] == pytest.approx(trainer._metrics["train"]["rewards/margins"][-1], rel=1e-5)


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_is_trls_conservative_dpo(smoothing):
    """medzoo's ``label_smoothing`` is cDPO: ``-(1 - e) logsigmoid(b d) - e logsigmoid(-b d)``. TRL's ``sigmoid`` had
    it until its DPO refactor (huggingface/trl#3906; ``dpo_loss`` at commit a68fb896f008f58a3d37abf11ae665357b7c679a);
    in TRL 1.16 the same expression is the ``aot`` loss's, whose sorting over the batch is the identity for a batch
    of one pair. So TRL is called pair by pair, and the step's loss is the mean of its pairs' losses."""
    reference = Bigram(seed=1).requires_grad_(False)
    ours = Bigram(seed=0)
    metrics = medzoo_dpo_step(dpo(beta=0.5, label_smoothing=smoothing), ours, reference)
    theirs = Bigram(seed=0)
    total = 0.0
    for sample in SAMPLES:
        trainer = dpo_trainer(FusedHead(theirs.logits_of), ["aot"], 0.5, label_smoothing=smoothing,
                              ref_model=FusedHead(reference.logits_of))
        total = total + trainer._compute_loss(trainer.model, trl_dpo_batch([sample]),
                                              return_outputs=False) / len(SAMPLES)
    total.backward()
    close(torch.tensor(metrics["loss"]), total, "cDPO loss")
    close(ours.W.grad, theirs.W.grad, "cDPO gradient")
    close(ours.P.grad, theirs.P.grad, "cDPO gradient")


def test_trls_aot_loss_is_still_the_conservative_dpo_expression():
    """The source lines the label-smoothing agreement rests on (trl/trainer/dpo_trainer.py, TRL 1.16.0): ``aot``
    sorts the log-ratios and applies cDPO's expression, while ``sigmoid`` no longer reads ``label_smoothing``."""
    source = (Path(trl.__file__).parent / "trainer" / "dpo_trainer.py").read_text()
    aot = source[source.index('elif loss_type == "aot":'):source.index('elif loss_type == "aot_unpaired":')]
    assert "-F.logsigmoid(self.beta * delta) * (1 - self.label_smoothing)" in aot
    assert "- F.logsigmoid(-self.beta * delta) * self.label_smoothing" in aot
    assert "delta = logratios_sorted - ref_logratios_sorted" in aot
    sigmoid = source[source.index('if loss_type == "sigmoid":'):source.index('elif loss_type == "hinge":')]
    assert "per_sequence_loss = -F.logsigmoid(self.beta * delta_score)" in sigmoid
    assert "label_smoothing" not in sigmoid


# -- GRPO advantages --------------------------------------------------------------------------------------------

ADVANTAGE_CASES = {
    # name: (rewards, group size)
    "mixed groups": ([1.0, 0.0, 0.5, 0.25, 2.0, 2.0, 2.0, 2.0, 0.1, 0.9, 0.3, 0.7], 4),
    "pairs": ([1.0, 0.0, 0.0, 0.0, 0.3, 0.8, -1.0, 2.5], 2),
    "every group equal": ([0.5, 0.5, 0.5, 1.0, 1.0, 1.0], 3),
}


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("case", list(ADVANTAGE_CASES))
def test_group_advantages_equal_trls(case, scale):
    rewards, group_size = ADVANTAGE_CASES[case]
    lengths = [1 + (3 * i) % 5 for i in range(len(rewards))]
    output, logged = trl_advantages(rewards, lengths, group_size, scale)
    advantages, equal = group_advantages(torch.tensor(rewards), group_size, scale)
    close(advantages, output["advantages"], f"{case}, scale {scale}: advantages")
    per_completion_equal = equal.repeat_interleave(group_size)
    assert not advantages[per_completion_equal].any(), "a group of equal rewards has zero advantages"
    if scale != "batch":  # TRL's frac_reward_zero_std is the share of completions in groups of equal rewards ...
        assert per_completion_equal.float().mean().item() == pytest.approx(logged["frac_reward_zero_std"][-1])
    # ... and with batch scaling whether the whole batch's rewards are equal; medzoo counts the groups either way
    assert equal.tolist() == [len(set(rewards[i:i + group_size])) == 1 for i in range(0, len(rewards), group_size)]


# -- GRPO loss --------------------------------------------------------------------------------------------------

#: 8 completions (4 groups of 2) of up to 5 tokens; their lengths, advantages, and log-ratios to the rollout policy
LENGTHS = [3, 5, 1, 4, 2, 5, 4, 3]
ADVANTAGES = [1.2, -1.2, 0.7, -0.7, 0.0, 0.0, 0.5, -0.5]
#: logp - old_logp per token: ratios above 1 + 0.28 and below 1 - 0.2 with either sign of advantage, and inside
LOG_RATIOS = [[0.5, -0.1, 0.2, 0.0, 0.0],     # A > 0: r = 1.65 clipped high, 0.90 inside, 1.22 (clipped at 0.2 only)
              [-0.5, 0.3, 0.05, -0.3, 0.22],  # A < 0: r = 0.61 clipped low, 1.35 not clipped (min takes r A), ...
              [1.0, 0.0, 0.0, 0.0, 0.0],
              [-1.0, 0.4, -0.15, 0.1, 0.0],
              [0.3, -0.3, 0.0, 0.0, 0.0],
              [0.1, 0.2, -0.2, 0.6, -0.6],
              [-0.4, 0.35, 0.0, 0.15, 0.0],
              [0.45, -0.25, 0.1, 0.0, 0.0]]
MAX_COMPLETION = 6


def completion_mask() -> torch.Tensor:
    return (torch.arange(5).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)).long()


def policy_log_probs() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return -torch.rand(len(LENGTHS), 5, generator=generator, dtype=torch.float64) * 3 - 0.05


def reference_log_probs() -> torch.Tensor:
    generator = torch.Generator().manual_seed(4)
    return policy_log_probs() + 0.4 * torch.randn(len(LENGTHS), 5, generator=generator, dtype=torch.float64)


def old_log_probs() -> torch.Tensor:
    return policy_log_probs() - torch.tensor(LOG_RATIOS, dtype=torch.float64)


def medzoo_policy_loss(
    logps: torch.Tensor, rows: list[int], normalisation: str, clip_low: float, clip_high: float, beta: float,
    kl_ratio_correction: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A micro-batch's share of the step loss (the step: all of ``LENGTHS``), its clipped flags and its tokens."""
    mask = completion_mask()[rows].bool()
    token_rows = mask.nonzero(as_tuple=True)[0]
    normaliser = loss_normaliser(LENGTHS, normalisation, MAX_COMPLETION)
    losses, parts = per_token_policy_loss(
        logps[rows][mask], old_log_probs()[rows][mask], torch.tensor(ADVANTAGES, dtype=torch.float64)[rows][token_rows],
        clip_low, clip_high, reference_log_probs()[rows][mask], beta, kl_ratio_correction,
    )
    share = reduce_policy_loss(losses, token_rows, len(rows), normalisation, normaliser)
    return share, parts["clipped"], mask


def trl_inputs(rows: list[int], beta: float) -> dict[str, torch.Tensor]:
    mask = completion_mask()
    inputs = {"completion_mask": mask[rows], "advantages": torch.tensor(ADVANTAGES, dtype=torch.float64)[rows],
              "old_per_token_logps": old_log_probs()[rows],
              "num_items_in_batch": mask.sum()}  # the generation batch's tokens, all processes (TRL's gather)
    if beta:
        inputs["ref_per_token_logps"] = reference_log_probs()[rows]
    return inputs


SETTINGS = {
    # name: (clip_low, clip_high, beta, TRL's use_bias_correction_kl)
    "ppo clip": (0.2, 0.2, 0.0, False),
    "dapo clip-higher": (0.2, 0.28, 0.0, False),
    "kl beta 0.04": (0.2, 0.28, 0.04, False),
    "kl with ratio correction": (0.2, 0.2, 0.3, True),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("normalisation", ["grpo", "dapo", "dr_grpo"])
def test_policy_loss_over_micro_batches_equals_trls_on_the_whole_batch(normalisation, setting):
    """medzoo's micro-batch shares (an unequal split: 1, 3, 2 and 2 completions) sum to TRL's loss on the whole batch,
    and so do their gradients; the ratios are off 1 and hit both clip edges."""
    clip_low, clip_high, beta, correction = SETTINGS[setting]
    ours = policy_log_probs().requires_grad_(True)
    total = torch.zeros((), dtype=torch.float64)
    clipped = []
    for rows in ([0], [1, 2, 3], [4, 5], [6, 7]):
        share, flags, _ = medzoo_policy_loss(ours, rows, normalisation, clip_low, clip_high, beta, correction)
        total = total + share
        clipped.append(flags)
    total.backward()

    theirs = policy_log_probs().requires_grad_(True)
    trainer = grpo_trainer(normalisation, beta, clip_low, clip_high, MAX_COMPLETION,
                           use_bias_correction_kl=correction)
    loss = trl_policy_loss(trainer, theirs, trl_inputs(list(range(len(LENGTHS))), beta))
    loss.backward()

    close(total, loss, f"{normalisation}, {setting}: loss")
    close(ours.grad * completion_mask(), theirs.grad * completion_mask(), f"{normalisation}, {setting}: gradient")
    logged = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    assert logged["clip_ratio/low_mean"] > 0 and logged["clip_ratio/high_mean"] > 0, "both clip edges are hit"
    assert torch.cat(clipped).mean().item() == pytest.approx(logged["clip_ratio/region_mean"])


def test_trls_default_kl_ratio_correction_changes_the_gradient_even_on_policy():
    """TRL 1.16 multiplies the KL term by the ratio by default (``use_bias_correction_kl=True``); medzoo's default
    is the plain k3 term of the GRPO paper (TRL with the correction off, above). On policy (ratio 1) the values
    agree but the gradients differ by exactly beta x k3 per token, since the ratio is differentiable: medzoo's
    ``kl_ratio_correction`` is a real choice, and with it medzoo equals TRL's default."""
    on_policy = policy_log_probs()
    mask = completion_mask().bool()
    tokens = int(mask.sum())
    reference = reference_log_probs()

    def medzoo_gradient(correction: bool) -> tuple[torch.Tensor, torch.Tensor]:
        logps = on_policy.clone().requires_grad_(True)
        losses, _ = per_token_policy_loss(logps[mask], on_policy[mask], torch.zeros(tokens, dtype=torch.float64),
                                          ref_logps=reference[mask], beta=0.5, kl_ratio_correction=correction)
        loss = losses.sum() / tokens
        return loss, torch.autograd.grad(loss, logps)[0]

    plain_loss, plain = medzoo_gradient(False)
    corrected_loss, corrected = medzoo_gradient(True)
    logps = on_policy.clone().requires_grad_(True)
    inputs = {**trl_inputs(list(range(len(LENGTHS))), 0.5), "old_per_token_logps": on_policy,
              "advantages": torch.zeros(len(LENGTHS), dtype=torch.float64)}
    trl_loss = trl_policy_loss(grpo_trainer("dapo", beta=0.5), logps, inputs)  # GRPOConfig's default correction
    trl_gradient = torch.autograd.grad(trl_loss, logps)[0]

    close(plain_loss, corrected_loss, "on policy the values agree")
    close(corrected_loss, trl_loss, "medzoo with the correction: TRL's default loss")
    close(corrected[mask], trl_gradient[mask], "medzoo with the correction: TRL's default gradient")
    delta = reference[mask] - on_policy[mask]
    close((corrected - plain)[mask] * tokens, 0.5 * (torch.exp(delta) - delta - 1), "the correction's gradient")
    assert (0.5 * (torch.exp(delta) - delta - 1)).min() > 1e-4, "the difference is not lost in the tolerance"


@pytest.mark.parametrize("normalisation", ["grpo", "dapo", "dr_grpo"])
def test_shares_over_accumulation_and_processes_equal_trls_data_parallel_step(normalisation):
    """2 processes x 2 accumulated micro-batches of 2 completions. TRL divides each micro-batch's loss by the
    accumulation steps (``dapo``: by the step's token count over all processes, divided by the process count) and DDP
    averages the processes' gradients; medzoo's trainer multiplies each share by the process count before DDP
    averages. Each micro-batch's loss is the same on both sides, and so is the step's gradient."""
    processes, accumulation = 2, 2
    split = [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]  # process -> micro-batches -> completions
    ours = policy_log_probs().requires_grad_(True)
    theirs = policy_log_probs().requires_grad_(True)
    ours_total = torch.zeros((), dtype=torch.float64)
    theirs_total = torch.zeros((), dtype=torch.float64)
    for process in split:
        trainer = grpo_trainer(normalisation, 0.0, 0.2, 0.28, MAX_COMPLETION,
                               gradient_accumulation_steps=accumulation, num_processes=processes)
        for rows in process:
            share, _, _ = medzoo_policy_loss(ours, rows, normalisation, 0.2, 0.28, 0.0)
            their_loss = trl_policy_loss(trainer, theirs[rows], trl_inputs(rows, 0.0))
            close(share * processes, their_loss, f"{normalisation}: a process's micro-batch loss")
            ours_total = ours_total + share  # x processes by medzoo's trainer, then / processes by DDP
            theirs_total = theirs_total + their_loss / processes
    ours_total.backward()
    theirs_total.backward()
    close(ours.grad, theirs.grad, f"{normalisation}: the step's gradient")
    whole = trl_policy_loss(grpo_trainer(normalisation, 0.0, 0.2, 0.28, MAX_COMPLETION), policy_log_probs(),
                            trl_inputs(list(range(len(LENGTHS))), 0.0))
    close(ours_total, whole, f"{normalisation}: the step is one big batch")
