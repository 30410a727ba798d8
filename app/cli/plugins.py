"""``medzoo plugins``: every registered component and contender (kind, name, provider) and the plugins that failed
to load."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON ({components, contenders, failures}) instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List every registered component and contender (kind `contender`: `medzoo eval --contender NAME`): its
    kind, name, the plugin that provides it and its description; plugins that failed to load go to stderr."""
    from medzoo.core.plugin_system.manager import components, plugin_system
    from medzoo.core.plugin_system.registry import CONTENDER_KIND

    listed = [
        {"kind": entry.kind, "name": entry.name, "provider": entry.provider, "description": entry.description}
        for entry in components()  # contenders last: theirs is the last kind
    ]
    rows = [row for row in listed if row["kind"] != CONTENDER_KIND]
    contenders = [row for row in listed if row["kind"] == CONTENDER_KIND]
    failures = [{"plugin": f.plugin, "distribution": f.distribution, "error": f.error}
                for f in plugin_system().failures]
    if as_json:
        click.echo(json.dumps({"components": rows, "contenders": contenders, "failures": failures}, indent=2))
        return
    kind_width = max(len(row["kind"]) for row in listed)
    name_width = max(len(row["name"]) for row in listed)
    provider_width = max(len(row["provider"]) for row in listed)
    for row in listed:
        click.echo(f"{row['kind']:<{kind_width}}  {row['name']:<{name_width}}  {row['provider']:<{provider_width}}  "
                   f"{row['description']}".rstrip())
    for failure in failures:
        click.echo(f"failed to load: {failure['plugin']} ({failure['distribution']}): {failure['error']}", err=True)
