"""``Model.chat``: a multi-turn conversation about one image, each answer generated with the turns so far."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from medzoo.core.errors import DataError

if TYPE_CHECKING:
    from medzoo.core.inference import InferenceEngine, SamplingSettings
    from medzoo.core.interfaces.conversation import Message


class Chat:
    """The conversation so far (``turns``) and the image it is about; the image goes with the first question."""

    def __init__(self, engine: InferenceEngine, image: Any, settings: SamplingSettings, system: str | None = None
                 ) -> None:
        self.engine = engine
        self.image = image
        self.settings = settings
        self.system = system
        self.turns: list[Message] = []

    def ask(self, question: str, on_text: Callable[[str], None] | None = None) -> str:
        """The answer to ``question`` given the turns so far (``on_text`` receives it as it is generated)."""
        from medzoo.app.api.inputs import user_turn
        from medzoo.core.inference import RowRequest
        from medzoo.core.interfaces.conversation import Message

        first = not self.turns and self.image is not None
        message = Message("user", user_turn(question, first) if first else self._text(question))
        messages = [*([Message("system", self.system)] if self.system else []), *self.turns, message]
        images = [self.image] if self.image is not None else []
        try:
            sample = self.engine.encode(messages, images)
        except ValueError as error:
            raise DataError(f"chat: {str(error).splitlines()[0]}") from None
        completion = self.engine.run([RowRequest(sample, self.settings, on_text=on_text)])[0]
        self.turns += [message, Message("assistant", completion.text)]
        return completion.text

    @staticmethod
    def _text(question: Any) -> str:
        if not isinstance(question, str):
            raise DataError(f"question: a {type(question).__name__}; expected a string")
        return question

    def reset(self) -> None:
        """Forget the turns (the image stays)."""
        self.turns = []
