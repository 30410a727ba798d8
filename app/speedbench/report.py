"""The bench report as Markdown tables: every figure beside its same-process baseline and the ratio."""

from __future__ import annotations

from typing import Any

from medzoo.app.speedbench.markdown_table import markdown_table


def render(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"command: `{env['command']}`",
             f"machine: {env['cpu_cores']} CPU cores ({env['machine']}), torch threads {env['torch_threads']}, "
             f"device {env.get('gpu', env['device'])}; python {env['python']}, torch {env['torch']}, "
             f"transformers {env['transformers']}, accelerate {env['accelerate']}", ""]
    training = report.get("training")
    if training:
        lines += [f"### Training step ({training['recipe']} recipe, {training['stage']} stage, micro-batch "
                  f"{training['micro_batch_size']}, {training['precision']}, {training['warmup']} warmup + "
                  f"{training['steps']} timed rounds; attention: LM {training['attention']['language']}, "
                  f"vision {training['attention']['vision']})", ""]
        rows = [[r["batching"], r["medzoo"]["step_s"], r["transformers"]["step_s"], r["medzoo"]["samples_per_s"],
                 r["transformers"]["samples_per_s"], r["medzoo"]["tokens_per_s"], r["transformers"]["tokens_per_s"],
                 r["time_ratio"], r.get("median_time_ratio", "n/a")] for r in training["rows"]]
        lines += markdown_table(["batches", "medzoo s/step", "transformers s/step", "medzoo samples/s",
                         "transformers samples/s", "medzoo tokens/s", "transformers tokens/s",
                         "time ratio medzoo/transformers", "median-step ratio"], rows)
        lines += [""]
        rows = [[b["batching"], b["tokens_per_s"], b["baseline_tokens_per_s"], b["ratio"],
                 training["fill"][b["batching"]], training["fill"]["padded"]] for b in training["batching"]]
        lines += markdown_table(["medzoo batching", "tokens/s", "padded tokens/s (baseline)", "ratio", "fill",
                         "padded fill"], rows)
        lines += [""]
    if report.get("resolution"):
        from medzoo.app.speedbench.resolution import render_resolution

        lines += render_resolution(report["resolution"])
    inference = report.get("inference")
    if inference:
        lines += [f"### Inference ({inference['questions']} {inference['benchmark']} questions, up to "
                  f"{inference['max_new_tokens']} new tokens, greedy)", ""]
        lines += markdown_table(["batch", "questions/s", "batch 1 questions/s (baseline)", "ratio", "median per-chunk ratio"],
                        [[inference["batch_size"], inference["questions_per_s"],
                          inference["baseline_questions_per_s"], inference["ratio"],
                          inference.get("median_round_ratio", "n/a")]])
        lines += [""]
    if report.get("rollouts"):
        from medzoo.app.speedbench.rollouts import render_rollouts

        lines += render_rollouts(report["rollouts"])
    if report.get("levers"):
        lines += _tradeoffs(report["levers"])
    if report.get("busy"):
        from medzoo.app.speedbench.shared_machine import render_shared_machine

        lines += render_shared_machine(report["busy"])
    gpu = report.get("gpu")
    if gpu and gpu.get("runs"):
        lines += [f"### GPU ({gpu['device']}, bf16, random weights at LLaVA-Med v1.5 shapes)", ""]
        rows = [[r["run"], r["decoder_layers"], r["micro_batch"], r["sequence"], r["step_s"], r["samples_per_s"],
                 r["tokens_per_s"], r.get("mfu", "n/a"), r.get("peak_memory_gib", "n/a")] for r in gpu["runs"]]
        lines += markdown_table(["run", "decoder layers", "micro-batch", "sequence", "s/step", "samples/s", "tokens/s", "MFU",
                         "peak GiB"], rows)
        projection = gpu["projection"]
        lines += ["", f"projected curriculum on {projection['gpus']} GPUs ({projection['scaling']}): "
                  + ", ".join(f"{k} {v} h" for k, v in projection["hours"].items()), ""]
    elif gpu is not None:
        lines += ["### GPU", "", f"not measured: {gpu.get('status', 'no CUDA device')}", ""]
    return "\n".join(lines)


def _mib(size: int) -> float:
    return round(size / 2**20, 2)


def _tradeoffs(levers: dict[str, Any]) -> list[str]:
    connector, checkpointing = levers["connector"], levers["checkpointing"]
    lines = [f"### Levers: token-reducing connector ({connector['stage']}; micro-batch {connector['micro_batch']}, "
             f"1 image + {connector['text_tokens']} text tokens per sample, CPU fp32)", ""]
    rows = [[r["connector"], r["image_tokens"], r["sequence"], r["step_s"], r["median_step_s"], r["samples_per_s"],
             r["tokens_per_s"], r["ratio"], r["median_ratio"]] for r in connector["rows"]]
    lines += markdown_table(["connector", "image tokens/sample", "sequence", "s/step", "median s/step", "samples/s",
                     "tokens/s", f"samples/s ratio (baseline {connector['baseline']})", "median-step ratio"], rows)
    lines += ["", f"### Levers: gradient checkpointing ({checkpointing['stage']}; micro-batch "
              f"{checkpointing['micro_batch']} x {checkpointing['sequence']} tokens, "
              f"{checkpointing['decoder_layers']} decoder layers, CPU fp32)", ""]
    rows = [["on" if r["gradient_checkpointing"] else "off (baseline)", _mib(r["saved_bytes"]), _mib(r["held_bytes"]),
             r["step_s"], r["median_step_s"]] for r in checkpointing["rows"]]
    rows.append(["ratio on / off", checkpointing["saved_ratio"], checkpointing["held_ratio"],
                 checkpointing["time_ratio"], checkpointing["median_time_ratio"]])
    lines += markdown_table(["gradient checkpointing", "saved for backward MiB", "held after forward MiB", "s/step",
                     "median s/step"], rows)
    return lines + [""]
