"""``medzoo zoo``: the variants of registry.yaml (recipes, published weights) and the registered components."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click


def component_rows() -> list[dict[str, Any]]:
    """Every registered component as its plugin declared it: kind, name, description, hub ids, licence (contenders
    are listed by ``medzoo plugins``)."""
    from medzoo.core.plugin_system.manager import components
    from medzoo.core.plugin_system.registry import COMPONENT_KINDS

    return [
        {"kind": entry.kind, "plugin": entry.name, "description": entry.description,
         "hub_ids": list(entry.hub_ids), "licence": entry.licence}
        for entry in components() if entry.kind in COMPONENT_KINDS
    ]


def _echo_variants(catalog: Any) -> None:
    click.echo(f"variants ({catalog.path}):")
    width = max(len(variant.name) for variant in catalog.variants)
    for variant in catalog.variants:
        recipe = f"recipe {variant.recipe}" if variant.recipe else "no recipe"
        click.echo(f"  {variant.name:<{width}}  {recipe}: {variant.description}")
        for weights in variant.weights:
            how = f"delta on {weights.base}" if weights.is_delta else f"format {weights.format}"
            click.echo(f"  {'':<{width}}  weights {weights.source} ({how})")


def _echo_components(rows: list[dict[str, Any]]) -> None:
    click.echo("components:")
    kind_width = max(len(row["kind"]) for row in rows)
    name_width = max(len(row["plugin"]) for row in rows)
    for row in rows:
        extra = f" [{', '.join(row['hub_ids'])}]" if row["hub_ids"] else ""
        licence = f" (licence: {row['licence']})" if row["licence"] else ""
        click.echo(f"  {row['kind']:<{kind_width}}  {row['plugin']:<{name_width}}  {row['description']}{extra}{licence}")


@click.command("zoo")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def zoo_command(as_json: bool) -> None:
    """Variants (recipe, published weights) and components (hub ids, licence) the zoo offers."""
    from medzoo.app.zoo_variants import load_catalog

    catalog = load_catalog()
    rows = component_rows()
    if as_json:
        payload = {"path": str(catalog.path), "variants": [asdict(variant) for variant in catalog.variants],
                   "components": rows}
        click.echo(json.dumps(payload, indent=2))
        return
    _echo_variants(catalog)
    _echo_components(rows)
