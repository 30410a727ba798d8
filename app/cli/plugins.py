"""``medzoo plugins``: every registered component (kind, name, provider) and plugins that failed to load."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List every registered component: its kind, name and the plugin that provides it."""
    from medzoo.core.plugin_system.manager import components, plugin_system

    rows = [
        {"kind": entry.kind, "name": entry.name, "provider": entry.provider,
         "description": entry.description}
        for entry in components()
    ]
    failures = [{"plugin": f.plugin, "distribution": f.distribution, "error": f.error}
                for f in plugin_system().failures]
    if as_json:
        click.echo(json.dumps({"components": rows, "failures": failures}, indent=2))
        return
    kind_width = max(len(row["kind"]) for row in rows)
    name_width = max(len(row["name"]) for row in rows)
    provider_width = max(len(row["provider"]) for row in rows)
    for row in rows:
        click.echo(f"{row['kind']:<{kind_width}}  {row['name']:<{name_width}}  {row['provider']:<{provider_width}}  "
                   f"{row['description']}".rstrip())
    for failure in failures:
        click.echo(f"failed to load: {failure['plugin']} ({failure['distribution']}): {failure['error']}", err=True)
