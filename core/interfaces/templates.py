"""Looking up conversation templates by name."""

from __future__ import annotations

from medzoo.core.interfaces.conversation import ConversationTemplate
from medzoo.core.plugin_system.manager import components


def get_template(name: str) -> ConversationTemplate:
    factory = components().get("template", name).factory
    return factory() if isinstance(factory, type) else factory
