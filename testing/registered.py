"""What the registry holds, as tests parametrise over it: a new component is tested as soon as it is registered."""

from __future__ import annotations

from medzoo.core.errors import PluginError
from medzoo.core.plugin_system.manager import components


def concrete_names(kind: str) -> list[str]:
    """Every name of ``kind`` a recipe can use, in name order, with each family registered with ``pattern=``
    (``mlpnx_gelu``) replaced by the ``examples`` it registers (``mlp2x_gelu``); a family without examples is a
    PluginError naming it, since none of its members could be tested."""
    registry = components()
    names: list[str] = []
    for name in registry.names(kind):
        info = registry.get(kind, name).info
        if not info.get("pattern"):
            names.append(name)
            continue
        examples = info.get("examples")
        if not examples:
            raise PluginError(f"{kind} family {name!r} registers no examples; expected examples=(...) naming "
                              "members the parametrised tests can build")
        names.extend(examples)
    return names
