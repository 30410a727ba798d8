"""``medzoo import``, ``medzoo export``, ``medzoo apply-delta`` and ``medzoo make-delta``."""

from __future__ import annotations

from pathlib import Path

import click

from medzoo.core.dtypes import DTYPE_NAMES

DTYPE_CHOICE = click.Choice(DTYPE_NAMES)
#: the keys of ``medzoo.app.interop.llava_import.FORMATS``, spelt out so ``--help`` does not import torch
#: (tests/test_cli_lazy.py keeps the two in step)
IMPORT_FORMATS = ("hf-llava", "llava-med-v1.0", "llava-med-v1.5", "llava-v1.5")


@click.command("import")
@click.argument("source")
@click.option("--format", "format_", required=True, type=click.Choice(IMPORT_FORMATS),
              help="Layout of SOURCE (see docs/interop.md).")
@click.option("--output", "-O", required=True, type=click.Path(file_okay=False), help="medzoo model directory.")
@click.option("--dtype", type=DTYPE_CHOICE, default=None, help="Weights dtype (default: the checkpoint's).")
@click.option("--tokenizer", default=None, help="Tokenizer directory or hub id (default: SOURCE).")
@click.option("--template", default=None, help="Conversation template (default: the format's).")
@click.option("--vision-tower", default=None,
              help="CLIP hub id or directory replacing the config's mm_vision_tower (e.g. a local copy).")
def import_command(source, format_, output, dtype, tokenizer, template, vision_tower) -> None:
    """Import the checkpoint SOURCE (a directory or a hub id) as a medzoo model directory."""
    from medzoo.app.interop.llava_import import import_checkpoint

    report = import_checkpoint(source, format_, output, dtype=dtype, tokenizer=tokenizer, template=template,
                               vision_tower=vision_tower)
    for line in report.lines():
        click.echo(line)


@click.command("export")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "format_", type=click.Choice(["hf-llava", "llava-next"]), default="hf-llava",
              show_default=True, help="llava-next: a tiled (AnyRes) model for LlavaNextForConditionalGeneration.")
@click.option("--output", "-O", required=True, type=click.Path(file_okay=False))
@click.option("--dtype", type=DTYPE_CHOICE, default=None, help="Weights dtype (default: the model's).")
@click.option("--no-merge", is_flag=True,
              help="Keep the language model's LoRA adapter unmerged: the base plus adapter/ (PEFT) for "
                   "PeftModel.from_pretrained.")
def export_command(model_dir, format_, output, dtype, no_merge) -> None:
    """Export the medzoo model in MODEL_DIR for transformers' LlavaForConditionalGeneration and vLLM (or, tiled,
    LlavaNextForConditionalGeneration)."""
    from medzoo.app.interop.hf_llava_export import EXPORT_MARKER, check_exportable, export_hf_llava
    from medzoo.app.interop.llava_next_export import check_llava_next_exportable, export_llava_next
    from medzoo.core.atomic_writes import refuse_overlap, refuse_unless_ours
    from medzoo.core.model.multimodal import MultimodalModel

    refuse_overlap(output, model_dir, "--output")
    refuse_unless_ours(output, EXPORT_MARKER, f"an {format_} export")
    model = MultimodalModel.from_pretrained(model_dir)
    check, export = ((check_llava_next_exportable, export_llava_next) if format_ == "llava-next"
                     else (check_exportable, export_hf_llava))
    check(model)
    report = export(model, output, dtype=dtype, merge_lora=not no_merge)
    for line in report.lines():
        click.echo(line)


@click.command("apply-delta")
@click.option("--base", required=True, help="LLaMA-7B directory or hub id (transformers layout).")
@click.option("--delta", required=True, help="Delta weights directory or hub id (e.g. LLaVA-Med v1.0).")
@click.option("--output", "-O", required=True, type=click.Path(file_okay=False))
@click.option("--output-format", type=click.Choice(["medzoo", "llava"]), default="medzoo", show_default=True,
              help="medzoo: a model directory with the v1.0 recipe; llava: the merged official checkpoint.")
@click.option("--dtype", type=DTYPE_CHOICE, default=None, help="Weights dtype of a medzoo output.")
@click.option("--vision-tower", default=None, help="CLIP hub id or directory replacing mm_vision_tower.")
def apply_delta_command(base, delta, output, output_format, dtype, vision_tower) -> None:
    """Rebuild LLaVA-Med v1.0 (target = base + delta, tensor by tensor)."""
    from medzoo.app.interop.delta import apply_delta_dirs, refuse_checkpoint_output, write_checkpoint
    from medzoo.app.interop.llava_import import convert_checkpoint, refuse_import_output, write_imported

    if output_format == "llava":
        refuse_checkpoint_output(Path(output), base, delta)
    else:
        refuse_import_output(Path(output), base, delta)
    target, config, delta_dir, report = apply_delta_dirs(base, delta)
    for line in report.lines():
        click.echo(line)
    if output_format == "llava":
        write_checkpoint(target, config, delta_dir, Path(output))
        click.echo(f"merged checkpoint written to {output} (import it with --format llava-med-v1.0)")
        return
    model, imported = convert_checkpoint(
        target, config, "llava-med-v1.0", tokenizer_source=str(delta_dir), source=f"{base} + {delta}",
        dtype=dtype, vision_tower=vision_tower,
    )
    write_imported(model, imported, Path(output))
    for line in imported.lines():
        click.echo(line)


@click.command("make-delta")
@click.option("--base", required=True, help="Base model directory (transformers layout).")
@click.option("--target", required=True, help="Full model directory in the official LLaVA layout.")
@click.option("--output", "-O", required=True, type=click.Path(file_okay=False))
def make_delta_command(base, target, output) -> None:
    """Write TARGET as a delta against BASE (apply-delta reproduces TARGET exactly)."""
    from medzoo.app.interop.delta import make_delta_dirs

    report = make_delta_dirs(base, target, Path(output))
    for line in report.lines():
        click.echo(line)
    click.echo(f"delta written to {output}")
