"""medzoo speed: FLOP counting and projection math on small numbers, report structure on tiny sizes (numbers
positive and finite, never compared with thresholds), the GPU code path at tiny shapes on CPU."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from medzoo.app.speedbench.activation_memory import activation_bytes
from medzoo.app.speedbench.flops import (
    ConnectorShape,
    DecoderShape,
    VisionShape,
    mfu,
    peak_flops,
    roles_for,
    training_step_flops,
)
from medzoo.app.speedbench.projection import StageWork, project
from medzoo.app.speedbench.timing import interleaved
from medzoo.app.speedbench.training_tradeoffs import (
    TradeoffShapes,
    checkpointing_tradeoff,
    connector_tradeoff,
)

#: the trade-offs at tiny shapes: a 4 x 4 patch grid (16 image tokens), a 2-layer LM
TINY_TRADEOFFS = TradeoffShapes(
    vision={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "image_size": 32, "patch_size": 8},
    language={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 256, "tokenizer": "medzoo-tiny"},
    stage1_micro_batch=2, stage1_text_tokens=8, stage2_micro_batch=2, stage2_text_tokens=16,
)


def test_decoder_flops_by_hand():
    shape = DecoderShape(hidden=4, intermediate=8, layers=2, heads=2, kv_heads=1, vocab=10)
    # per layer: q,o 2*16 + k,v 2*4*2 = 48; mlp 3*32 = 96 -> 144 x 2 layers + head 40 = 328
    assert shape.matmul_params() == 328
    assert shape.forward_flops(tokens=3, sequence=3) == 2 * 328 * 3 + 4 * 2 * 4 * 3 * 3


def test_vision_and_connector_flops_by_hand():
    vision = VisionShape(hidden=2, intermediate=4, layers=1, tokens=3, patch_pixels=1)
    assert vision.forward_flops(1) == 2 * (16 + 16) * 3 + 4 * 2 * 3 * 3 + 2 * 3 * 1 * 2 * 2
    assert ConnectorShape(vision=2, language=3).forward_flops(5) == 2 * (6 + 9) * 5


def test_step_flops_follow_the_tuning():
    vision = VisionShape(8, 16, 2, 5, 4)
    connector = ConnectorShape(8, 16)
    language = DecoderShape(16, 32, 2, 4, 2, 50)
    parts = (vision.forward_flops(2), connector.forward_flops(8), language.forward_flops(2 * 10, 10))

    def step(tuning):
        return training_step_flops(vision, connector, language, 2, 4, 2, 10, roles_for(tuning))

    stage1 = step({"vision": "frozen", "connector": "full", "language": "frozen"})
    stage2 = step({"vision": "frozen", "connector": "full", "language": "full"})
    lora = step({"vision": "frozen", "connector": "full", "language": "lora"})
    assert stage1 == pytest.approx(parts[0] + 3 * parts[1] + 2 * parts[2])
    assert stage2 == pytest.approx(parts[0] + 3 * parts[1] + 3 * parts[2])
    assert lora == stage1
    assert mfu(1e12, 0.5, 4e12) == pytest.approx(0.5)
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("a toaster") is None


def test_projection():
    hours = {k: v / 3600 for k, v in project([StageWork("a", 3600, 1.0, 1.0), StageWork("b", 100, 3.0, 0.5)],
                                             gpus=2).items()}
    assert hours["a"] == pytest.approx(0.5) and hours["b"] == pytest.approx(300 / 3600)
    assert hours["total"] == pytest.approx(hours["a"] + hours["b"])
    assert project([StageWork("a", 80, 1.0, 1.0)], gpus=8, efficiency=0.5)["a"] == pytest.approx(20)
    with pytest.raises(ValueError):
        project([StageWork("a", 1, 1.0, 0.0)])


def test_interleaved_rotates_order_and_skips_warmup():
    calls = []
    timings = interleaved({"x": lambda i: calls.append(("x", i)), "y": lambda i: calls.append(("y", i))}, 3, 1)
    assert calls[:4] == [("x", 0), ("y", 0), ("y", 1), ("x", 1)]
    assert len(timings["x"].seconds) == 3 and all(s >= 0 for s in timings["y"].seconds)


def test_gpu_code_path_at_tiny_shapes_on_cpu():
    from medzoo.app.speedbench.gpu import StageRun, measure_stage, run_gpu_section

    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": 32, "patch_size": 8}
    language = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "vocab_size": 1400, "max_position_embeddings": 256, "tokenizer": "medzoo-tiny"}
    runs = [StageRun("s1", {"vision": "frozen", "connector": "full", "language": "frozen"}, 2, 8, vision, language),
            StageRun("s2", {"vision": "frozen", "connector": "full", "language": "full"}, 2, 8, vision,
                     {**language, "num_hidden_layers": 1})]
    result = measure_stage(runs[0], device="cpu", dtype=torch.float32, steps=1, warmup=0, peak=1e12)
    assert result["sequence"] == 1 + 16 + 8
    for key in ("step_s", "samples_per_s", "tokens_per_s", "model_tflops_per_step", "mfu", "loss"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    section = run_gpu_section(steps=1, warmup=0, runs=runs, device="cpu", echo=lambda *_: None)
    assert [r["run"] for r in section["runs"]] == ["s1", "s2"]
    hours = section["projection"]["hours"]
    assert hours["total"] == pytest.approx(hours["alignment"] + hours["instruct"], abs=0.02) and hours["total"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_section_at_v15_shapes():
    from medzoo.app.speedbench.gpu import run_gpu_section

    section = run_gpu_section(steps=3, warmup=1, echo=lambda *_: None)
    for run in section["runs"]:
        assert run["peak_memory_gib"] > 0 and 0 < run.get("mfu", 0.5) < 1


@pytest.fixture(scope="module")
def synth_root(synthetic_data):
    return synthetic_data(train=40, val=0, test=30)


def test_bench_command_reports_every_figure_with_its_baseline(synth_root, monkeypatch):
    from medzoo.app.cli.main import cli
    from medzoo.app.speedbench import training_tradeoffs

    monkeypatch.setattr(training_tradeoffs, "TradeoffShapes", lambda: TINY_TRADEOFFS)
    result = CliRunner().invoke(cli, [
        "speed", "--json", "--steps", "1", "--warmup", "0", "--questions", "4", "--max-new-tokens", "2", "--no-gpu",
        "--skip", "rollouts",  # its own test: tests/test_speedbench_rollouts.py
        "-o", f"data.root={synth_root}", "-o", "stages.1.micro_batch_size=4",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"command", "torch", "transformers", "cpu_cores"} <= set(report["environment"])
    training = report["training"]
    assert training["attention"] == {"language": "sdpa", "vision": "sdpa"}
    assert [row["batching"] for row in training["rows"]] == ["padded", "grouped", "packed"]
    for row in training["rows"]:
        for side in ("medzoo", "transformers"):
            assert all(math.isfinite(v) and v > 0 for v in row[side].values())
        assert row["time_ratio"] == pytest.approx(row["medzoo"]["step_s"] / row["transformers"]["step_s"], rel=1e-2)
    for entry in training["batching"]:
        assert entry["ratio"] == pytest.approx(entry["tokens_per_s"] / entry["baseline_tokens_per_s"], rel=1e-2)
    assert 0 < training["fill"]["padded"] <= training["fill"]["packed"] <= 1
    inference = report["inference"]
    assert inference["questions"] == 4 and inference["questions_per_s"] > 0 and inference["baseline_questions_per_s"] > 0
    assert [row["connector"] for row in report["levers"]["connector"]["rows"]] == ["mlp2x_gelu", "multigranularity"]
    assert [row["gradient_checkpointing"] for row in report["levers"]["checkpointing"]["rows"]] == [False, True]
    assert report["gpu"]["status"].startswith("no CUDA device")
    busy = report["busy"]
    assert busy["competitors"] == 1 and busy["idle_samples_per_s"] > 0 and busy["fair_share_samples_per_s"] > 0
    for policy in ("governed", "fixed_threads"):
        ratio = busy[policy]["samples_per_s"] / busy["fair_share_samples_per_s"]
        assert busy[policy]["ratio_to_fair_share"] == pytest.approx(ratio, rel=1e-2)
    assert busy["fixed_threads"]["threads"] == busy["idle_threads"]


def test_render_markdown_tables():
    from medzoo.app.speedbench.report import render

    env = {"command": "medzoo speed", "cpu_cores": 2, "machine": "x86_64", "torch_threads": 2, "device": "cpu",
           "python": "3.11", "torch": "2", "transformers": "5", "accelerate": "1"}
    side = {"step_s": 0.5, "samples_per_s": 2.0, "tokens_per_s": 100.0}
    training = {"recipe": "tiny", "stage": "instruct", "micro_batch_size": 16, "precision": "fp32", "warmup": 1,
                "steps": 2, "attention": {"language": "sdpa", "vision": "sdpa"},
                "rows": [{"batching": "padded", "medzoo": side, "transformers": side, "time_ratio": 1.0}],
                "batching": [{"batching": "grouped", "tokens_per_s": 150.0, "baseline_tokens_per_s": 100.0,
                              "ratio": 1.5}], "fill": {"padded": 0.6, "grouped": 0.9}}
    text = render({"environment": env, "training": training, "gpu": {"status": "no CUDA device"}})
    assert "| padded | 0.5 | 0.5 | 2.0 | 2.0 | 100.0 | 100.0 | 1.0 | n/a |" in text and "| grouped | 150.0 | 100.0 | 1.5 | 0.9 | 0.6 |" in text
    assert "not measured: no CUDA device" in text
    times = {"step_s": 0.4, "median_step_s": 0.4}
    levers = {
        "connector": {"stage": "stage 1", "micro_batch": 4, "text_tokens": 64, "baseline": "mlp2x_gelu", "rows": [
            {"connector": "mlp2x_gelu", "image_tokens": 576, "sequence": 641, **times, "samples_per_s": 10.0,
             "tokens_per_s": 6410.0, "ratio": 1.0, "median_ratio": 1.0},
            {"connector": "multigranularity", "image_tokens": 181, "sequence": 246, "step_s": 0.2,
             "median_step_s": 0.2, "samples_per_s": 20.0, "tokens_per_s": 4920.0, "ratio": 2.0,
             "median_ratio": 2.0}]},
        "checkpointing": {"stage": "stage 2", "micro_batch": 2, "sequence": 897, "decoder_layers": 4, "rows": [
            {"gradient_checkpointing": False, "saved_bytes": 8 * 2**20, "held_bytes": 8 * 2**20, **times},
            {"gradient_checkpointing": True, "saved_bytes": 2**20, "held_bytes": 2**20, **times}],
            "saved_ratio": 0.125, "held_ratio": 0.125, "time_ratio": 1.0, "median_time_ratio": 1.0},
    }
    text = render({"environment": env, "levers": levers})
    assert "| multigranularity | 181 | 246 | 0.2 | 0.2 | 20.0 | 4920.0 | 2.0 | 2.0 |" in text
    assert "| off (baseline) | 8.0 | 8.0 | 0.4 | 0.4 |" in text and "| ratio on / off | 0.125 | 0.125 | 1.0 | 1.0 |" in text


def test_activation_bytes_by_hand_with_and_without_checkpointing():
    from torch.utils.checkpoint import checkpoint

    x = torch.randn(1000, requires_grad=True)  # 4000 bytes, excluded like a batch

    def plain():  # sin saves its input b, cos saves c: 2 x 4000 bytes; the loss (4 bytes) is held too
        return (x * 2).sin().cos().sum()

    def checkpointed():  # only the checkpoint's input b is kept; c is recomputed in backward
        return checkpoint(lambda b: b.sin().cos(), x * 2, use_reentrant=False).sum()

    for forward, saved in ((plain, 8000), (checkpointed, 4000)):
        loss, counted = activation_bytes(forward, [x])
        assert (counted.saved, counted.held) == (saved, saved + 4)
        loss.backward()


def test_connector_tradeoff_reduces_image_tokens():
    section = connector_tradeoff(TINY_TRADEOFFS, steps=1, warmup=0)
    mlp, pooled = section["rows"]
    assert (mlp["connector"], pooled["connector"]) == ("mlp2x_gelu", "multigranularity")
    assert mlp["image_tokens"] == 16 and pooled["image_tokens"] == 2 * 2 + 1 * 1  # grids [14, 7, 1] fit to [2, 1]
    assert [row["sequence"] for row in section["rows"]] == [1 + 16 + 8, 1 + 5 + 8]
    assert mlp["ratio"] == 1.0 and mlp["median_ratio"] == 1.0
    for row in section["rows"]:
        assert all(math.isfinite(row[key]) and row[key] > 0 for key in ("step_s", "samples_per_s", "tokens_per_s"))
    assert pooled["ratio"] == pytest.approx(mlp["step_s"] / pooled["step_s"], rel=1e-2)


def test_checkpointing_tradeoff_keeps_fewer_bytes_for_backward():
    section = checkpointing_tradeoff(TINY_TRADEOFFS, steps=1, warmup=0)
    off, on = section["rows"]
    assert (off["gradient_checkpointing"], on["gradient_checkpointing"]) == (False, True)
    assert section["sequence"] == 1 + 16 + 16 and section["decoder_layers"] == 2
    for row in section["rows"]:
        # the pack hook and the liveness count agree: checkpoint's own hooks hide nothing that is kept
        assert row["saved_bytes"] > 0 and row["held_bytes"] == pytest.approx(row["saved_bytes"], rel=0.05)
        assert row["step_s"] > 0
    # without checkpointing each decoder layer keeps many [B, T, *] tensors, with it only its input
    layer_input = 2 * section["sequence"] * 64 * 4
    assert off["held_bytes"] - on["held_bytes"] > 2 * 4 * layer_input
    assert 0 < section["held_ratio"] < 1 and 0 < section["saved_ratio"] < 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_section_refused_without_cuda_in_one_line(tmp_path):
    from medzoo.app.cli.main import cli

    result = CliRunner().invoke(cli, ["speed", "--gpu", "-o", f"data.root={tmp_path / 'never-made'}"])
    assert result.exit_code == 2
    assert "--gpu: torch sees no CUDA device in this process" in result.output
    assert not (tmp_path / "never-made").exists(), "no data synthesised before the refusal"


def test_former_command_name_still_runs_the_speed_bench():
    from click.testing import CliRunner

    from medzoo.app.cli.main import cli

    listed = CliRunner().invoke(cli, ["--help"]).output
    assert "speed" in listed and " bench " not in listed
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0 and "--full-layers" in result.output
