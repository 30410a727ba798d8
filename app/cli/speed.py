"""``medzoo speed`` (alias ``medzoo speed``): training-step, batching, inference, GRPO rollouts, training levers (and,
with CUDA, GPU) throughput with baselines."""

from __future__ import annotations

import json
import sys

import click


@click.command("speed")
@click.option("--recipe", default="tiny", show_default=True, help="Recipe name or YAML path.")
@click.option("-o", "--override", "overrides", multiple=True, help="Recipe override key=value (repeatable).")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(1), help="Timed training rounds.")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(0), help="Untimed warmup rounds.")
@click.option("--questions", default=32, show_default=True, type=click.IntRange(1), help="Inference questions.")
@click.option("--max-new-tokens", default=32, show_default=True, type=click.IntRange(1))
@click.option("--gpu/--no-gpu", "gpu", default=None, help="GPU section (default: when CUDA is available).")
@click.option("--full-layers", default=16, show_default=True, type=click.IntRange(1), help="Decoder layers of the GPU full fine-tuning run.")
@click.option("--skip", type=click.Choice(["training", "inference", "rollouts", "levers", "busy", "resolution"]),
              multiple=True,
              help="Leave a section out.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch intra-op threads (1 is steadier when other processes share the cores).")
@click.option("--competitors", default=1, show_default=True, type=click.IntRange(1),
              help="CPU-bound processes the busy-machine section runs beside the training steps.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def speed(recipe: str, overrides: tuple[str, ...], steps: int, warmup: int, questions: int, max_new_tokens: int,
          gpu: bool | None, full_layers: int, skip: tuple[str, ...], threads: int | None, competitors: int,
          as_json: bool) -> None:
    """Measure medzoo against same-process baselines (transformers Llava, padded batches, batch-1 inference,
    transformers' generate for GRPO rollouts, mlp2x_gelu connector, no gradient checkpointing, fixed threads beside competing processes)."""
    import torch

    from medzoo.app.data_setup import ensure_data
    from medzoo.app.speedbench.environment import environment
    from medzoo.app.speedbench.report import render
    from medzoo.core.model.build import build_model
    from medzoo.core.recipes.loading import load_recipe

    if gpu and not torch.cuda.is_available():
        raise click.UsageError("--gpu: torch sees no CUDA device in this process; run it on a GPU machine")
    if threads:
        from medzoo.core.cpu_threads import pin_threads

        pin_threads(threads)
    echo = (lambda message: click.echo(message, err=True)) if as_json else click.echo
    config = load_recipe(recipe, list(overrides)).config
    if {"training", "inference", "rollouts", "busy"} - set(skip):
        ensure_data(config, echo)
    report = {"environment": environment(["medzoo", "speed", *sys.argv[2:]])}
    from medzoo.app.speedbench.resolution import tiles

    if tiles(config.model):  # transformers' Llava (the training and busy baselines) reads one fixed-size picture
        skip = (*skip, "training", "busy")
        echo("tiled recipe: the training and busy sections (transformers Llava baselines) are left out; the "
             "resolution section times it against its fixed-size twin")
        if "resolution" not in skip:
            from medzoo.app.speedbench.resolution import run_resolution_bench

            report["resolution"] = run_resolution_bench(config, steps, warmup, echo)
    if "training" not in skip:
        from medzoo.app.speedbench.train_step import run_training_bench

        report["training"] = run_training_bench(config, steps, warmup, echo)
    if "inference" not in skip:
        from medzoo.app.speedbench.inference import run_inference_bench

        torch.manual_seed(0)
        model = build_model(config.model, shrink=config.shrink)
        report["inference"] = run_inference_bench(model, config, questions, 16, max_new_tokens, echo)
    if "rollouts" not in skip:
        from medzoo.app.speedbench.rollouts import run_rollout_bench

        report["rollouts"] = run_rollout_bench(config, steps, warmup, max_new_tokens, echo)
    if "levers" not in skip:
        from medzoo.app.speedbench.training_tradeoffs import run_tradeoffs_section

        report["levers"] = run_tradeoffs_section(steps, warmup, echo=echo)
    if "busy" not in skip:
        from medzoo.app.speedbench.shared_machine import run_shared_machine_bench

        report["busy"] = run_shared_machine_bench(config, steps, warmup, competitors, echo)
    use_gpu = torch.cuda.is_available() if gpu is None else gpu
    if use_gpu:
        from medzoo.app.speedbench.gpu import run_gpu_section

        report["gpu"] = run_gpu_section(full_layers=full_layers, echo=echo)
    else:
        report["gpu"] = {"status": "no CUDA device in this process; run `medzoo speed --gpu` on a GPU machine"}
    click.echo(json.dumps(report, indent=2) if as_json else render(report))


#: the command's former name, kept so existing scripts keep working (hidden from ``medzoo --help``)
bench_alias = click.Command(
    "bench", callback=speed.callback, params=speed.params, help=speed.help, hidden=True, context_settings={}
)
