"""``docs/components.md``'s tables, generated from the registration info: one fact, one place.

Each table row is ``| `name` | description | weights | swap in |``: the description, hub ids and licence
are what the plugin registered (``medzoo plugins``, ``medzoo zoo``); only the swap-in example is the page's own,
kept from the current page (a newly registered component gets the plain one). Rows follow the page's order, new
components after them, unregistered ones dropped.

Regenerate with ``python -m medzoo.app.components_doc`` (``--check``: exit 1 when the page is stale);
``tests/test_components_doc.py`` fails when the page and the registry differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: the page's sections, in order: kind -> its heading
SECTIONS: dict[str, str] = {
    "vision_encoder": "## Vision encoders",
    "language_model": "## Language models",
    "connector": "## Connectors",
    "template": "## Templates",
}
HEADER = "| name | description | weights | swap in |\n|---|---|---|---|"
#: the swap-in example of a component the page does not list yet
DEFAULT_SWAP_IN = {
    "vision_encoder": "-o model.vision.name={name}",
    "language_model": "-o model.language.name={name}",
    "connector": "-o model.connector.name={name}",
    "template": "-o model.language.template={name}",
}
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")


def page_path() -> Path:
    return Path(__file__).resolve().parents[1] / "docs" / "components.md"


def _cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (pipes escaped, one line)."""
    return " ".join(text.split()).replace("|", "\\|")


def _weights(hub_ids: tuple[str, ...], licence: str | None) -> str:
    listed = ", ".join(f"`{hub_id}`" for hub_id in dict.fromkeys(hub_ids)) or "none"
    return f"{listed}; licence: {_cell(licence)}" if licence else listed


def _table_span(lines: list[str], heading: str) -> tuple[int, int]:
    """(first, end) line indexes of the table under ``heading`` (its header line to its last row)."""
    start = lines.index(heading)
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("| name |"))
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return first, end


def _swap_ins(rows: list[str]) -> dict[str, str]:
    """name -> the swap-in cell of each current row (its last cell)."""
    found = {}
    for row in rows:
        match = _ROW.match(row)
        if match:
            found[match.group(1)] = re.split(r"(?<!\\)\|", row.strip().strip("|"))[-1].strip()
    return found


def render(page: str) -> str:
    """``page`` with every section's table regenerated from the built-in registrations."""
    from medzoo.core.plugin_system.manager import components

    registry = components()
    lines = page.split("\n")
    for kind, heading in SECTIONS.items():
        first, end = _table_span(lines, heading)
        swap_ins = _swap_ins(lines[first:end])
        builtin = [name for name in registry.names(kind) if registry.get(kind, name).provider.startswith("medzoo.")]
        order = [name for name in swap_ins if name in builtin] + [name for name in builtin if name not in swap_ins]
        rows = []
        for name in order:
            entry = registry.get(kind, name)
            swap_in = swap_ins.get(name) or f"`{DEFAULT_SWAP_IN[kind].format(name=name)}`"
            rows.append(f"| `{name}` | {_cell(entry.description)} | {_weights(entry.hub_ids, entry.licence)} | "
                        f"{swap_in} |")
        lines[first:end] = [*HEADER.split("\n"), *rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the page from the registry (``--check``: only say whether it is current)."""
    from medzoo.core.atomic_writes import write_atomically

    check = "--check" in (argv if argv is not None else sys.argv[1:])
    path = page_path()
    current = path.read_text(encoding="utf-8")
    generated = render(current)
    if generated == current:
        print(f"{path}: up to date")
        return 0
    if check:
        print(f"{path}: stale; regenerate with python -m medzoo.app.components_doc", file=sys.stderr)
        return 1
    write_atomically(path, generated)
    print(f"{path}: regenerated from the registry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
