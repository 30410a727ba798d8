"""``medzoo eval``: answer and score one benchmark with a saved model."""

from __future__ import annotations

import json

import click


@click.command("eval")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--benchmark", "-b", required=True, help="Benchmark plugin name (see `medzoo plugins`).")
@click.option("--data", default=None, help="Benchmark file (default: the benchmark's own data path).")
@click.option("--image-root", default=None, help="Folder the benchmark's image paths are relative to.")
@click.option("--output-dir", "-d", required=True, type=click.Path(file_okay=False))
@click.option("--batch-size", default=16, show_default=True)
@click.option("--image-ablation", type=click.Choice(["noise", "blank"]), default=None,
              help="Also score with every image replaced, and report the drop.")
@click.option("--option", "options", multiple=True, help="Benchmark option key=value (repeatable).")
def evaluate_command(model_dir, benchmark, data, image_root, output_dir, batch_size, image_ablation, options) -> None:
    """Answer BENCHMARK with the model in MODEL_DIR; writes predictions.jsonl and metrics.json (resumable)."""
    from medzoo.core.evaluation.evaluate_model import evaluate
    from medzoo.core.model import MultimodalModel

    parsed = dict(option.split("=", 1) for option in options)
    model = MultimodalModel.from_pretrained(model_dir)
    metrics = evaluate(
        model, benchmark, output_dir, data=data, image_root=image_root, options=parsed, batch_size=batch_size,
        image_ablation=image_ablation, model_id=model_dir, echo=click.echo,
    )
    click.echo(json.dumps(metrics, indent=2))
