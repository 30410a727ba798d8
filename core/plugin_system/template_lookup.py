"""Looking up a registered conversation template by name, bound to a tokenizer where it needs one."""

from __future__ import annotations

from typing import Any

from medzoo.core.interfaces.conversation import ConversationTemplate
from medzoo.core.plugin_system.manager import components


def get_template(name: str) -> ConversationTemplate:
    factory = components().get("template", name).factory
    return factory() if isinstance(factory, type) else factory


def template_for(name: str, tokenizer: Any) -> ConversationTemplate:
    """The template ``name`` bound to ``tokenizer`` (see :meth:`ConversationTemplate.for_tokenizer`)."""
    return get_template(name).for_tokenizer(tokenizer)
