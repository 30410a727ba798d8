"""``chat_template``: render with the tokenizer's own Jinja chat template (``tokenizer.apply_chat_template``).

The processor binds it to the model's tokenizer (:meth:`ChatTemplate.for_tokenizer`). The trained spans come
from :func:`chat_spans` (each reply plus the end-of-turn marker the template writes after it, the drift
check included), the stop string is that marker. When the rendered text starts with the tokenizer's BOS and
the tokenizer prepends BOS itself when encoding, the text loses it (one BOS, never two). ``<image>`` in a
user turn passes through the template unchanged (checked when binding). A tokenizer without a chat template
is a one-line error suggesting the named templates.

Unbound (a registry listing, no tokenizer yet) it renders with plain ChatML, so it can be shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from medzoo import (
    IMAGE_PLACEHOLDER,
    ConversationTemplate,
    DataError,
    MedzooError,
    Message,
    RecipeError,
    RenderedConversation,
)
from medzoo.plugins.templates.chat_spans import Renderer, chat_spans
from medzoo.plugins.templates.turns import exchanges

NAME = "chat_template"
#: plain ChatML, what the unbound template renders with
CHATML_JINJA = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_PROBE = (
    Message("user", f"{IMAGE_PLACEHOLDER}\nWhat is shown?"),
    Message("assistant", "A polyp."),
    Message("user", "Where?"),
    Message("assistant", "Left."),
)


def _reference_renderer() -> Renderer:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    compiled = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHATML_JINJA)
    return lambda chat, generation: compiled.render(messages=chat, add_generation_prompt=generation)


class ChatTemplate(ConversationTemplate):
    name = NAME
    image_placement = "front"  # LLaVA-1.5's preprocess_multimodal, as the LLaVA-style models of these LMs

    def __init__(
        self,
        renderer: Renderer | None = None,
        source: str = "plain ChatML (unbound)",
        control_tokens: tuple[str, ...] = ("<|im_start|>", "<|im_end|>"),
        bos_to_strip: str | None = None,
    ) -> None:
        self._renderer = renderer
        self.source = source
        self.control_tokens = control_tokens
        #: the BOS text the tokenizer prepends itself (removed from the front of the rendered text)
        self.bos_to_strip = bos_to_strip

    @property
    def _what(self) -> str:
        return f"template {self.name!r} with tokenizer {self.source!r}"

    def _render_text(self, chat: list[dict[str, str]], add_generation_prompt: bool) -> str:
        if self._renderer is None:
            self._renderer = _reference_renderer()
        try:
            return self._renderer(chat, add_generation_prompt)
        except MedzooError:
            raise
        except Exception as error:  # the template's own raise_exception, or a Jinja error
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(f"{self._what}: the chat template refused the conversation: {detail}") from None

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        """The tokenizer's rendering (``eos_token`` is unused: the template writes its own markers)."""
        exchanges(messages, add_generation_prompt, self.name)  # turn order, as every template checks it
        rendered = chat_spans(self._render_text, messages, add_generation_prompt, self.control_tokens, self._what)
        bos = self.bos_to_strip
        if bos and rendered.text.startswith(bos):
            cut = len(bos)
            spans = [(start - cut, end - cut) for start, end in rendered.target_spans]
            return RenderedConversation(rendered.text[cut:], spans)
        return rendered

    @cached_property
    def stop_strings(self) -> tuple[str, ...]:  # type: ignore[override]
        """The end-of-turn marker the template writes after a reply."""
        rendered = chat_spans(self._render_text, _PROBE[:2], False, self.control_tokens, self._what)
        start, end = rendered.target_spans[0]
        return (rendered.text[start + len(_PROBE[1].content) : end].strip(),)

    def for_tokenizer(self, tokenizer: Any) -> ChatTemplate:
        """This template reading ``tokenizer``'s chat template (checked on a two-turn conversation with an image)."""
        source = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        jinja = getattr(tokenizer, "chat_template", None)
        if isinstance(jinja, dict):
            jinja = jinja.get("default")
        if not jinja:
            from medzoo import components

            named = ", ".join(name for name in components().names("template") if name != self.name)
            raise RecipeError(f"template {self.name!r}: tokenizer {source!r} has no chat_template; choose a named "
                              f"template instead: {named}")

        def renderer(chat: list[dict[str, str]], add_generation_prompt: bool) -> str:
            return tokenizer.apply_chat_template(
                chat, chat_template=jinja, tokenize=False, add_generation_prompt=add_generation_prompt
            )

        control = tuple(dict.fromkeys([*tokenizer.all_special_tokens, *tokenizer.get_added_vocab()]))
        bound = ChatTemplate(renderer, source, control, _bos_added_by(tokenizer))
        probe = bound.render(_PROBE, tokenizer.eos_token or "")
        if f"{IMAGE_PLACEHOLDER}\n" not in probe.text:
            raise RecipeError(f"{bound._what}: the chat template does not pass {IMAGE_PLACEHOLDER} in a user turn "
                              "through unchanged")
        return bound


def _bos_added_by(tokenizer: Any) -> str | None:
    """The BOS text when encoding prepends BOS (then a rendered leading BOS must go), else ``None``."""
    bos, bos_id = tokenizer.bos_token, tokenizer.bos_token_id
    if bos is None or bos_id is None:
        return None
    return bos if tokenizer("x", add_special_tokens=True).input_ids[:1] == [bos_id] else None
