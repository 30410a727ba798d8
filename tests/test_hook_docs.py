"""docs/plugins.md documents every hookspec with its exact signature, and nothing that is not one."""

import inspect
import re
from pathlib import Path

from medzoo.core.plugin_system import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hookspec_signatures() -> dict[str, str]:
    found = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, f"{hookspecs.PROJECT_NAME}_spec"):
            signature = str(inspect.signature(function)).replace("'", "")
            found[name] = f"{name}{signature}"
    return found


def test_every_hookspec_is_documented_with_its_signature():
    text = DOC.read_text()
    signatures = hookspec_signatures()
    assert signatures, "no hookspecs found"
    for signature in signatures.values():
        assert f"### `{signature}`" in text, f"docs/plugins.md lacks the heading for {signature}"


def test_docs_list_no_stale_hooks():
    documented = set(re.findall(r"^### `(\w+)\(", DOC.read_text(), flags=re.M))
    assert documented == set(hookspec_signatures())
