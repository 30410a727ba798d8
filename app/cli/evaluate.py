"""``medzoo eval``: answer and score one benchmark with a saved model."""

from __future__ import annotations

import json

import click


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
@click.option("--fresh", is_flag=True,
              help="Remove the answer files, their .meta.json sidecars and metrics.json of an earlier run in "
                   "--output-dir first (nothing else there), instead of resuming.")
def evaluate_command(model, benchmark, data, image_root, output_dir, batch_size, image_ablation, options,
                     delta_base, fresh) -> None:
    """Answer BENCHMARK with MODEL (a model directory, or a registry variant such as llava-med-v1.5 whose
    published weights are imported on first use); writes predictions.jsonl, its predictions.meta.json sidecar
    and metrics.json. A rerun resumes the answers when the sidecar matches (same model weights, benchmark,
    options, data, protocol and ablation) and refuses otherwise; --fresh starts over."""
    from medzoo.app.interop.published import resolve_model
    from medzoo.core.errors import RecipeError
    from medzoo.core.evaluation.evaluate_model import evaluate
    from medzoo.core.model.multimodal import MultimodalModel

    malformed = [option for option in options if "=" not in option]
    if malformed:
        raise RecipeError(f"--option {malformed[0]!r}: expected key=value (e.g. root=data/synth)")
    parsed = dict(option.split("=", 1) for option in options)
    from medzoo.core.plugin_system.manager import components

    components().get("benchmark", benchmark)  # an unknown name fails before the model is loaded
    model_dir = resolve_model(model, delta_base=delta_base, echo=click.echo)
    loaded = MultimodalModel.from_pretrained(str(model_dir))
    metrics = evaluate(
        loaded, benchmark, output_dir, data=data, image_root=image_root, options=parsed, batch_size=batch_size,
        image_ablation=image_ablation, model_id=model, echo=click.echo, fresh=fresh,
    )
    click.echo(json.dumps(metrics, indent=2))
