"""DPO: the losses pinned to TRL's formulas, the objective's batch against log-probabilities computed by hand, the
preference readers and their bad records, the reference (adapters off, or precomputed once and kept across a
resume), and a stage that raises preference accuracy on a tiny model."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from medzoo.core.errors import DataError, RecipeError
from medzoo.core.interfaces.conversation import Message
from medzoo.core.interfaces.preference import PreferenceRecord
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.objectives.preference_losses import preference_losses
from medzoo.testing import TINY_MODEL

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 20)}


def dpo(**options):
    return components().get("objective", "dpo").factory(**options)


# -- the formulas -----------------------------------------------------------------------------------------------
# TRL's DPOTrainer.dpo_loss, huggingface/trl trl/trainer/dpo_trainer.py at commit
# a68fb896f008f58a3d37abf11ae665357b7c679a (the last before "Refactor DPO (#3906)"):
#   logits = (chosen_logps - rejected_logps) - (ref_chosen_logps - ref_rejected_logps)   (ref terms 0 if reference_free)
#   sigmoid: -logsigmoid(beta * logits) * (1 - label_smoothing) - logsigmoid(-beta * logits) * label_smoothing
#   ipo:     (logits - 1 / (2 * beta)) ** 2, over log-probs averaged per completion token (concatenated_forward)
#   chosen_rewards = beta * (chosen_logps - ref_chosen_logps).detach(), likewise rejected
#   sft / rpo term: nll_loss = cross-entropy of the chosen completions, mean over their tokens
# The expected values below are computed from those expressions by hand with math.log / math.exp.

def softplus(x: float) -> float:  # -logsigmoid(-x)
    return math.log1p(math.exp(x))


PAIRS = ([-10.0, -4.0], [-12.0, -3.0], [-11.0, -4.5], [-11.5, -3.5])  # chosen, rejected, ref chosen, ref rejected


@pytest.mark.parametrize(("loss_type", "beta", "smoothing", "expected"), [
    # logits = [2 - 0.5, -1 - (-1)] = [1.5, 0.0]
    ("sigmoid", 0.1, 0.0, [softplus(-0.15), math.log(2.0)]),
    ("sigmoid", 0.5, 0.2, [0.8 * softplus(-0.75) + 0.2 * softplus(0.75), math.log(2.0)]),
    ("ipo", 0.1, 0.0, [(1.5 - 5.0) ** 2, 25.0]),
    ("ipo", 0.25, 0.0, [(1.5 - 2.0) ** 2, 4.0]),
])
def test_preference_losses_equal_trls_formulas(loss_type, beta, smoothing, expected):
    chosen, rejected, ref_chosen, ref_rejected = (torch.tensor(values, dtype=torch.float64) for values in PAIRS)
    losses, chosen_rewards, rejected_rewards = preference_losses(chosen, rejected, ref_chosen, ref_rejected, beta,
                                                                 loss_type, smoothing)
    assert losses.tolist() == pytest.approx(expected, rel=1e-12)
    assert chosen_rewards.tolist() == pytest.approx([beta * 1.0, beta * 0.5], rel=1e-12)
    assert rejected_rewards.tolist() == pytest.approx([beta * -0.5, beta * 0.5], rel=1e-12)


def test_reference_free_compares_with_a_uniform_reference():
    chosen, rejected = torch.tensor([-10.0, -4.0]), torch.tensor([-12.0, -3.0])
    zeros = torch.zeros(2)
    losses, _, _ = preference_losses(chosen, rejected, zeros, zeros, 0.1)
    assert losses.tolist() == pytest.approx([softplus(-0.2), softplus(0.1)], rel=1e-6)


# -- the objective on a batch ----------------------------------------------------------------------------------

def tiny_model():
    from medzoo.core.model.build import build_model

    torch.manual_seed(0)
    return build_model(TINY_MODEL)


def answer_log_probs(model, processor, prompt: list[Message], answer: str) -> tuple[float, int, torch.Tensor]:
    """Summed log-probability of ``answer``'s tokens after ``prompt`` (full logits, no masking tricks), its token
    count and the per-token values: the tokens are those the template renders for the final reply."""
    whole = processor.encode_text([*prompt, Message("assistant", answer)], 0)
    labels = torch.tensor(whole.labels)
    labelled = (labels >= 0).nonzero().flatten().tolist()
    start = labelled[-1]
    while start - 1 in labelled:
        start -= 1
    ids = torch.tensor([whole.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    positions = range(start, len(whole.input_ids))
    values = torch.stack([log_probs[p - 1, whole.input_ids[p]] for p in positions])
    return float(values.sum()), len(values), values


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_batch_loss_and_metrics_from_hand_computed_log_probs(loss_type):
    from medzoo.core.inference import processor_for

    model = tiny_model().eval()
    processor = processor_for(model)
    prompts = [[Message("user", "Which lung holds the opacity?")],
               [Message("user", "Is there an effusion?"), Message("assistant", "No."), Message("user", "Sure?")]]
    answers = [("The left lung.", "The right lung."), ("Yes, I am sure.", "No, there is none at all.")]
    records = [PreferenceRecord(f"p{i}", prompt, chosen=c, rejected=r) for i, (prompt, (c, r)) in
               enumerate(zip(prompts, answers, strict=True))]
    objective = dpo(loss=loss_type, beta=0.2, sft_weight=0.7, preference_weight=0.8)
    samples = [objective.encode(processor, record, 128) for record in records]
    # only the final answer is labelled, not the earlier assistant turn of the second prompt
    assert sum(1 for label in samples[1].chosen.labels if label >= 0) == answer_log_probs(
        model, processor, prompts[1], answers[1][0])[1]
    batch = objective.collate(samples, [None, None], model.tokenizer.pad_token_id)
    reference = torch.tensor([[-30.0, -31.0], [-40.0, -38.0]])
    if loss_type == "ipo":
        reference = reference / 10
    pairs_in_step, chosen_tokens = objective.normaliser(samples)
    result = objective.loss(model, batch, (pairs_in_step + 2, chosen_tokens), scale=1.0, reference=reference)

    hand = [[answer_log_probs(model, processor, p, a) for a in pair] for p, pair in zip(prompts, answers, strict=True)]
    score = (lambda s, n: s / n) if loss_type == "ipo" else (lambda s, n: s)
    chosen = torch.tensor([score(h[0][0], h[0][1]) for h in hand], dtype=torch.float64)
    rejected = torch.tensor([score(h[1][0], h[1][1]) for h in hand], dtype=torch.float64)
    losses, chosen_rewards, rejected_rewards = preference_losses(
        chosen, rejected, reference[:, 0].double(), reference[:, 1].double(), 0.2, loss_type)
    nll = -torch.cat([h[0][2] for h in hand]).sum() / chosen_tokens  # TRL's nll_loss: mean over chosen tokens
    step = pairs_in_step + 2  # the step's pairs, of which this micro-batch holds two
    expected = 0.8 * losses.sum() / step + 0.7 * nll
    assert chosen_tokens == sum(h[0][1] for h in hand)
    assert float(result.loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    metrics = {name: float(value) for name, value in result.metrics.items()}
    assert metrics["loss/sft"] == pytest.approx(float(nll), rel=1e-5)
    assert metrics["rewards/chosen"] == pytest.approx(float(chosen_rewards.sum() / step), rel=1e-5, abs=1e-6)
    assert metrics["rewards/margin"] == pytest.approx(float((chosen_rewards - rejected_rewards).sum() / step),
                                                      rel=1e-5, abs=1e-6)
    assert metrics["rewards/accuracy"] == pytest.approx(float((chosen_rewards > rejected_rewards).sum()) / step)


# -- readers ----------------------------------------------------------------------------------------------------

def png(root: Path, name: str, colour: str) -> str:
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), COLOURS[colour]).save(root / "images" / name)
    return name


def test_llava_preference_reads_both_layouts_and_counts_bad_records_by_reason(tmp_path):
    image = png(tmp_path, "a.png", "red")
    prompt = [{"from": "human", "value": "<image>\nWhat colour?"}]
    rows = [
        {"id": "ok", "image": image, "conversations": prompt, "chosen": "Red.", "rejected": "Blue."},
        {"id": "turn", "image": image, "conversations": prompt, "chosen": {"from": "gpt", "value": "Red."},
         "rejected": {"from": "gpt", "value": "Green."}},
        {"id": "st", "image": image, "chosen_conversations": [*prompt, {"from": "gpt", "value": "Red."}],
         "reject_conversations": [*prompt, {"from": "gpt", "value": "Yellow."}]},
        {"id": "no-chosen", "image": image, "conversations": prompt, "rejected": "Blue."},
        {"id": "no-rejected", "image": image, "conversations": prompt, "chosen": "Red.", "rejected": "  "},
        {"id": "equal", "image": image, "conversations": prompt, "chosen": "Red.", "rejected": "Red. "},
        {"id": "st-differ", "image": image, "chosen_conversations": [*prompt, {"from": "gpt", "value": "Red."}],
         "reject_conversations": [{"from": "human", "value": "<image>\nWhat shape?"}, {"from": "gpt", "value": "A."}]},
        {"id": "ends-with-gpt", "image": image, "conversations": [*prompt, {"from": "gpt", "value": "Red."}],
         "chosen": "Red.", "rejected": "Blue."},
    ]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows))
    reader = components().get("dataset", "llava-preference").factory()
    records, report = reader.read(str(path), str(tmp_path / "images"))
    assert [(r.id, r.chosen, r.rejected) for r in records] == [
        ("ok", "Red.", "Blue."), ("turn", "Red.", "Green."), ("st", "Red.", "Yellow.")]
    assert records[2].messages == [Message("user", "<image>\nWhat colour?")]
    assert dict(report.skipped) == {"missing_chosen": 1, "missing_rejected": 1, "chosen_equals_rejected": 1,
                                    "prompts_differ": 1, "not_alternating": 1}
    assert "5 skipped" in report.summary()
    with pytest.raises(DataError) as raised:
        reader.read(str(path), str(tmp_path / "images"), on_bad_record="error")
    assert str(raised.value) == f"{path}: record no-chosen: missing_chosen: no 'chosen' answer"


def test_rlaif_v_reads_its_field_names_with_paths_or_embedded_images(tmp_path):
    image = png(tmp_path, "b.png", "green")
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), COLOURS["blue"]).save(buffer, format="PNG")
    rows = [
        {"ds_name": "RLAIF-V", "image": None, "image_path": image, "question": "What colour is it?",
         "chosen": "Green.", "rejected": "Red.", "origin_dataset": "x", "origin_split": "y", "idx": "1"},
        {"ds_name": "RLAIF-V", "image": {"bytes": base64.b64decode(base64.b64encode(buffer.getvalue()))},
         "question": "Describe it.", "chosen": "A blue square.", "rejected": "A red circle.", "idx": "2"},
        {"ds_name": "RLAIF-V", "image_path": image, "question": "Again?", "chosen": "Yes.", "rejected": "Yes.",
         "idx": "3"},
    ]
    reader = components().get("dataset", "rlaif-v").factory(image_cache_dir=str(tmp_path / "cache"))
    # embedded bytes only come from hub rows; the local file holds the path rows
    path = tmp_path / "rlaif.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in (rows[0], rows[2])))
    records, report = reader.read(str(path), str(tmp_path / "images"))
    assert [(r.id, r.messages[0].content, r.chosen) for r in records] == [("1", "<image>\nWhat colour is it?", "Green.")]
    assert records[0].image == (tmp_path / "images" / image).resolve()
    assert records[0].metadata["origin_dataset"] == "x"
    assert dict(report.skipped) == {"chosen_equals_rejected": 1}
    embedded = reader.record(rows[1], "2")
    assert embedded.image.is_file() and Image.open(embedded.image).getpixel((0, 0)) == COLOURS["blue"]


# -- stages -----------------------------------------------------------------------------------------------------

def preference_file(root: Path, n: int = 16) -> Path:
    rows = []
    names = list(COLOURS)
    for i in range(n):
        colour, wrong = names[i % 4], names[(i % 4 + 1 + (i // 4) % 3) % 4]
        rows.append({"id": f"p{i}", "image": png(root, f"{i}.png", colour),
                     "conversations": [{"from": "human", "value": "<image>\nWhat colour is the square?"}],
                     "chosen": f"The square is {colour}.", "rejected": f"The square is {wrong}."})
    path = root / "pairs.json"
    path.write_text(json.dumps(rows))
    return path


def stage_config(data: Path, objective: dict, tuning: dict, steps: int = 4, **extra):
    from medzoo.core.recipes.schema import StageConfig

    spec = {"name": "dpo", "role": "preference", "objective": objective,
            "datasets": [{"name": "llava-preference", "path": str(data), "image_root": str(data.parent / "images")}],
            "tuning": tuning, "optimizer": {"lr": 2e-3}, "max_steps": steps, "global_batch_size": 8,
            "micro_batch_size": 4, "max_length": 96, "precision": "fp32", "seed": 5, **extra}
    return OmegaConf.merge(OmegaConf.structured(StageConfig), spec)


LORA = {"vision": "frozen", "connector": "frozen", "language": "lora", "options": {"language": {"r": 4, "alpha": 8}}}
FULL = {"vision": "frozen", "connector": "full", "language": "full"}


def train(model, stage, folder: Path, resume: bool = False, lines: list[str] | None = None):
    from medzoo.core.training.distributed import cpu_accelerator
    from medzoo.core.training.trainer import train_stage

    echo = (lines.append if lines is not None else (lambda *a, **k: None))
    return train_stage(model, stage, folder, cpu_accelerator(), "error", resume, echo)


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_dpo_stage_raises_preference_accuracy_of_the_colour_model(trained_tiny_model, tmp_path):
    from medzoo.app.preference_accuracy import preference_accuracy
    from medzoo.core.model.multimodal import MultimodalModel

    data = preference_file(tmp_path)
    model = MultimodalModel.from_pretrained(str(trained_tiny_model))
    lines: list[str] = []
    result = train(model, stage_config(data, {"name": "dpo", "beta": 0.5}, LORA, steps=8), tmp_path / "stage",
                   lines=lines)
    result.model.save_pretrained(str(tmp_path / "after"))
    before, after = (preference_accuracy(folder, data, tmp_path / "images") for folder in
                     (trained_tiny_model, tmp_path / "after"))
    assert before["pairs"] == after["pairs"] == 16
    assert after["mean_margin"] > before["mean_margin"] and after["accuracy"] >= before["accuracy"]
    log = records(tmp_path / "stage")
    assert "reference: the starting model, as the same weights with the LoRA adapters switched off" in " ".join(lines)
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at the first step
    assert log[0]["rewards/margin"] == pytest.approx(0.0, abs=1e-5)
    assert log[-1]["rewards/margin"] > 0.05 and log[-1]["rewards/accuracy"] >= 0.75
    assert log[-1]["loss"] < log[0]["loss"]
    for key in ("loss/preference", "loss/sft", "rewards/chosen", "rewards/rejected", "logps/chosen"):
        assert all(math.isfinite(record[key]) for record in log), key


def test_switching_the_adapters_off_gives_the_starting_models_values(tmp_path):
    from medzoo.core.inference import processor_for
    from medzoo.core.training.reference import adapters_disabled, adapters_off_problem
    from medzoo.core.training.trainer import apply_tuning

    model = tiny_model()
    objective = dpo()
    processor = processor_for(model)
    samples = [objective.encode(processor, PreferenceRecord("p", [Message("user", "Colour?")], chosen="Red.",
                                                            rejected="Blue."), 64)]
    batch = objective.collate(samples, [None], model.tokenizer.pad_token_id)
    before = objective.reference_values(model, batch)
    apply_tuning(model, LORA)
    assert adapters_off_problem(model) is None
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.05)  # as if trained
    assert not torch.allclose(objective.reference_values(model, batch), before)
    with adapters_disabled(model):
        assert torch.allclose(objective.reference_values(model, batch), before)
    assert "already hold trained weights" in adapters_off_problem(model)


def test_a_reference_that_cannot_be_formed_stops_before_training(tmp_path):
    data = preference_file(tmp_path, n=8)
    tuning = {**LORA, "connector": "full"}
    stage = stage_config(data, {"name": "dpo", "reference": "adapters_off"}, tuning)
    with pytest.raises(RecipeError) as raised:
        train(tiny_model(), stage, tmp_path / "stage")
    assert str(raised.value) == (
        "stages.dpo.objective.reference: 'adapters_off' cannot form the reference: parameters outside the LoRA "
        "adapters train too (e.g. connector.layers.0.weight); expected the stage to train only fresh LoRA adapters "
        "(tuning: lora, the other modules frozen), or reference: precomputed")
    assert not (tmp_path / "stage" / "metrics.jsonl").exists()


class Interrupted(Exception):
    pass


def test_precomputed_reference_is_stored_and_read_back_on_resume(tmp_path, monkeypatch):
    """Full tuning: the reference values are computed once from the starting weights and stored with the stage; a
    run stopped after its step-2 checkpoint resumes reading them (not recomputing them from changed weights) and
    ends with the uninterrupted run's weights."""
    from medzoo.core.training import reference as reference_module
    from medzoo.core.training import trainer

    data = preference_file(tmp_path)
    stage = stage_config(data, {"name": "dpo", "sft_weight": 0.3}, FULL, steps=4, save_every_steps=2)
    whole = train(tiny_model(), stage, tmp_path / "whole").model
    assert (tmp_path / "whole" / "reference.pt").is_file()

    saved = trainer.save_due_checkpoint

    def stop_after_first_checkpoint(run, done):
        saved(run, done)
        if done == 2:
            raise Interrupted

    monkeypatch.setattr(trainer, "save_due_checkpoint", stop_after_first_checkpoint)
    with pytest.raises(Interrupted):
        train(tiny_model(), stage, tmp_path / "cut")
    monkeypatch.setattr(trainer, "save_due_checkpoint", saved)
    stored = torch.load(tmp_path / "cut" / "reference.pt", weights_only=True)["values"]
    computed = []
    monkeypatch.setattr(reference_module, "compute_table",
                        lambda run: computed.append(1) or pytest.fail("the reference was recomputed"))
    lines: list[str] = []
    resumed = train(tiny_model(), stage, tmp_path / "cut", resume=True, lines=lines).model
    assert computed == [] and any("values read from" in line for line in lines)
    assert torch.equal(stored, torch.load(tmp_path / "whole" / "reference.pt", weights_only=True)["values"])
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert [r["loss"] for r in records(tmp_path / "cut")] == [r["loss"] for r in records(tmp_path / "whole")]


def test_a_dpo_stage_refuses_a_record_without_answers_before_training(tmp_path):
    data = preference_file(tmp_path, n=8)
    rows = json.loads(data.read_text())
    del rows[3]["rejected"]
    data.write_text(json.dumps(rows))
    with pytest.raises(DataError) as raised:
        train(tiny_model(), stage_config(data, {"name": "dpo"}, LORA), tmp_path / "stage")
    assert str(raised.value) == f"{data}: record p3: missing_rejected: no 'rejected' answer"
    assert not (tmp_path / "stage" / "metrics.jsonl").exists()


def test_synthetic_preference_pairs_name_the_wrong_finding(synthetic_data):
    root = synthetic_data(seed=3, train=10, val=5, test=10)
    rows = json.loads((root / "preference" / "train.json").read_text())
    assert rows and all(row["chosen"] != row["rejected"] for row in rows)
    reader = components().get("dataset", "llava-preference").factory()
    records, report = reader.read(str(root / "preference" / "train.json"), str(root / "images"), "error")
    assert len(records) == len(rows) and report.total_skipped == 0
    rlaif, _ = components().get("dataset", "rlaif-v").factory().read(
        str(root / "preference" / "rlaif_v_train.jsonl"), str(root / "images"), "error")
    assert len(rlaif) == len(rows)
    by_key = {}
    for row in rows:  # a rejected answer is the answer some other image gives to the same question
        by_key.setdefault(row["question_key"], set()).add(row["chosen"])
    assert any(row["rejected"] in by_key.get(row["question_key"], set()) for row in rows)
