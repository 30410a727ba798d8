"""``medzoo eval``: answer and score one benchmark with a saved model or a contender, on one or more processes."""

from __future__ import annotations

import json

import click


def _pairs(values: tuple[str, ...], flag: str, example: str) -> dict[str, str]:
    malformed = [value for value in values if "=" not in value]
    if malformed:
        from medzoo.core.errors import RecipeError

        raise RecipeError(f"{flag} {malformed[0]!r}: expected key=value (e.g. {example})")
    return dict(value.split("=", 1) for value in values)


def _answerer(model: str, contender: str | None, contender_options: dict[str, str], delta_base: str | None,
              echo=click.echo):
    """(the answerer, what metrics.json records about the contender or None): the contender ``contender`` for
    MODEL, the ``hf-vlm`` contender when MODEL is a transformers image-text-to-text folder, or the medzoo model
    directory MODEL names."""
    from medzoo.core.evaluation.contenders import get_contender, load_contender

    if contender is not None:
        get_contender(contender)  # an unknown name fails before anything loads
        chosen = {"name": contender, "chosen": "--contender"}
        return load_contender(contender, model, **contender_options), chosen
    if contender_options:
        from medzoo.core.errors import RecipeError

        raise RecipeError("--contender-option: only a --contender takes options")
    from medzoo.app.interop.transformers_folder import HF_CONTENDER, transformers_folder

    folder = transformers_folder(model)
    if folder is not None:
        echo(f"{model}: a transformers model folder ({folder.reason()}): answering with --contender "
                   f"{HF_CONTENDER}")
        chosen = {"name": HF_CONTENDER, "chosen": "automatically", "reason": folder.reason()}
        return load_contender(HF_CONTENDER, model), chosen
    from medzoo.app.interop.published_weights import resolve_model
    from medzoo.core.evaluation.medzoo_answerer import MedzooAnswerer
    from medzoo.core.model.multimodal import MultimodalModel

    model_dir = resolve_model(model, delta_base=delta_base, echo=click.echo)
    return MedzooAnswerer(MultimodalModel.from_pretrained(str(model_dir)), model), None


@click.command("eval")
@click.argument("model")
@click.option("--benchmark", "-b", required=True, help="Benchmark plugin name (see `medzoo plugins`).")
@click.option("--data", default=None, help="Benchmark file (default: the benchmark's own data path).")
@click.option("--image-root", default=None, help="Folder the benchmark's image paths are relative to.")
@click.option("--output-dir", "-d", required=True, type=click.Path(file_okay=False))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Questions answered per batch.")
@click.option("--image-ablation", type=click.Choice(["noise", "blank"]), default=None,
              help="Also score with every image replaced, and report the drop.")
@click.option("--option", "options", multiple=True, help="Benchmark option key=value (repeatable).")
@click.option("--delta-base", default=None,
              help="Base model for a variant published as delta weights (default: the registry's).")
@click.option("--contender", default=None,
              help="Answer with a contender instead of a medzoo model: MODEL is its source (hf-vlm: a "
                   "transformers image-text-to-text model's hub id or folder).")
@click.option("--contender-option", "contender_options", multiple=True,
              help="Contender option key=value (repeatable; hf-vlm: dtype=auto|float32|bfloat16|float16).")
@click.option("--device", default="auto", show_default=True,
              help="auto (this process's GPU when there is one, else the CPU), cpu, cuda or cuda:N.")
@click.option("--fresh", is_flag=True,
              help="Remove the answer files, their .meta.json sidecars and metrics.json of an earlier run in "
                   "--output-dir first (nothing else there), instead of resuming.")
def evaluate_command(model, benchmark, data, image_root, output_dir, batch_size, image_ablation, options,
                     delta_base, contender, contender_options, device, fresh) -> None:
    """Answer BENCHMARK with MODEL (a model directory, a registry variant such as llava-med-v1.5 whose
    published weights are imported on first use, a transformers image-text-to-text folder, answered with the
    hf-vlm contender, or with --contender the contender's source); writes
    predictions.jsonl, its predictions.meta.json sidecar and metrics.json. A rerun resumes the answers when the
    sidecar matches (same model weights, benchmark, options, data, protocol and ablation) and refuses otherwise;
    --fresh starts over. Under `accelerate launch --num_processes N -m medzoo.app.cli eval ...` the processes
    share the questions and the main process merges and scores."""
    from medzoo.app.cli.eval_data import benchmark_options
    from medzoo.core.evaluation.processes import eval_processes
    from medzoo.core.plugin_system.manager import components

    parsed = _pairs(options, "--option", "root=data/synth")
    extra = _pairs(contender_options, "--contender-option", "dtype=bfloat16")
    components().get("benchmark", benchmark)  # an unknown name fails before the model is loaded
    if contender is not None:
        from medzoo.core.evaluation.contenders import get_contender

        get_contender(contender)  # so does an unknown contender
    processes = eval_processes()
    echo = click.echo if processes.is_main else (lambda *_: None)
    parsed = benchmark_options(benchmark, model, data, parsed, echo)  # its data is found before the model loads
    with processes.main_first():  # imports published weights or fills the hub cache once
        answerer, chosen = _answerer(model, contender, extra, delta_base, echo)
        answerer = answerer.to_device(processes.device(device))
    from medzoo.core.evaluation.evaluate_model import evaluate

    metrics = evaluate(
        answerer, benchmark, output_dir, data=data, image_root=image_root, options=parsed, batch_size=batch_size,
        image_ablation=image_ablation, echo=echo, fresh=fresh, processes=processes, contender=chosen,
    )
    if processes.is_main:
        click.echo(json.dumps(metrics, indent=2))
