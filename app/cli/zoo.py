"""``medzoo zoo``: the catalogue in registry.yaml (variants, published weights, components)."""

from __future__ import annotations

import dataclasses
import json

import click


@click.command("zoo")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def zoo_command(as_json: bool) -> None:
    """Variants (recipe, published weights) and components (hub ids, licence) the zoo offers."""
    from medzoo.app.catalog import load_catalog

    catalog = load_catalog()
    if as_json:
        payload = {
            "path": str(catalog.path),
            "variants": [dataclasses.asdict(variant) for variant in catalog.variants],
            "components": [dataclasses.asdict(entry) for entry in catalog.components],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"variants ({catalog.path}):")
    width = max(len(variant.name) for variant in catalog.variants)
    for variant in catalog.variants:
        recipe = f"recipe {variant.recipe}" if variant.recipe else "no recipe"
        click.echo(f"  {variant.name:<{width}}  {recipe}: {variant.description}")
        for weights in variant.weights:
            how = f"delta on {weights.base}" if weights.is_delta else f"format {weights.format}"
            click.echo(f"  {'':<{width}}  weights {weights.source} ({how})")
    click.echo("components:")
    kind_width = max(len(entry.kind) for entry in catalog.components)
    name_width = max(len(entry.plugin) for entry in catalog.components)
    for entry in catalog.components:
        extra = f" [{', '.join(entry.hub_ids)}]" if entry.hub_ids else ""
        licence = f" (licence: {entry.licence})" if entry.licence else ""
        click.echo(f"  {entry.kind:<{kind_width}}  {entry.plugin:<{name_width}}  {entry.description}{extra}{licence}")
