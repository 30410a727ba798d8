"""Turning generated tokens into text as they arrive: incremental detokenisation and stop strings."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

#: per fast tokenizer, the text of each single token decoded so far (``decode`` is a pure function of the ids, and
#: the incremental decoder's first window is usually the one previous token)
_SINGLE_TOKEN_TEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class IncrementalDecoder:
    """Decodes a growing token list piece by piece without re-decoding it all (keeps word-start spaces,
    waits for the rest of a multi-byte character)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self._prefix = 0
        self._read = 0
        self._backend = rust_decoder(tokenizer)
        self._singles: dict[int, str] | None = None
        if self._backend is not None:
            self._singles = _SINGLE_TOKEN_TEXTS.setdefault(tokenizer, {})

    def _decode(self, tokens: list[int]) -> str:
        if self._backend is None:
            return self.tokenizer.decode(tokens, skip_special_tokens=True)
        if len(tokens) != 1:
            return self._backend.decode(tokens, skip_special_tokens=True)
        text = self._singles.get(tokens[0])
        if text is None:
            text = self._singles[tokens[0]] = self._backend.decode(tokens, skip_special_tokens=True)
        return text

    def push(self, token: int) -> str:
        """Add one token; return the new text it completes (may be empty)."""
        self.tokens.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        """Text of the tokens still held back (an incomplete character at the end)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        before = self._decode(self.tokens[self._prefix : self._read])
        after = self._decode(self.tokens[self._prefix :])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return ""
        self._prefix, self._read = self._read, len(self.tokens)
        return after[len(before) :]


def rust_decoder(tokenizer):
    """The ``tokenizers`` object behind a fast tokenizer whose ``decode(ids, skip_special_tokens=True)`` is exactly
    its ``decode`` (no clean-up of spaces, neither method overridden), so called directly it gives the same text
    without transformers' per-call wrapping; None otherwise."""
    try:
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:
        return None
    kind = type(tokenizer)
    if (not isinstance(tokenizer, TokenizersBackend) or kind.decode is not PreTrainedTokenizerBase.decode
            or kind._decode is not TokenizersBackend._decode or tokenizer.clean_up_tokenization_spaces):
        return None
    return tokenizer._tokenizer


class StopScanner:
    """Accumulates answer text, cuts it at the first stop string and releases only text that cannot be
    the beginning of a stop string. Stops are matched in the text as generated; whitespace around the answer is
    then dropped (trailing whitespace is held until more text follows it)."""

    def __init__(self, stops: Sequence[str], releases: bool = True) -> None:
        self.stops = [stop for stop in stops if stop]
        self._longest = max((len(stop) for stop in self.stops), default=0)
        self.raw = ""
        self.released = 0
        self.stopped = False
        #: False: nobody reads the released text (no stream), so ``feed`` and ``finish`` only find the stops
        self.releases = releases

    @property
    def text(self) -> str:
        """The answer so far (all of it once stopped or finished)."""
        return self.raw.strip()

    def feed(self, piece: str) -> str:
        """Add generated text; return the text now safe to show."""
        if self.stopped:
            return ""
        start = max(0, len(self.raw) - self._longest + 1)
        self.raw += piece
        hits = [index for stop in self.stops if (index := self.raw.find(stop, start)) >= 0]
        if hits:
            self.raw = self.raw[: min(hits)]
            self.stopped = True
            return self.finish()
        return self._release(len(self.raw) - self._held()) if self.releases else ""

    def finish(self) -> str:
        """Release everything still held back except trailing whitespace."""
        return self._release(len(self.raw)) if self.releases else ""

    def _held(self) -> int:
        for size in range(min(self._longest - 1, len(self.raw)), 0, -1):
            tail = self.raw[-size:]
            if any(stop.startswith(tail) for stop in self.stops):
                return size
        return 0

    def _release(self, upto: int) -> str:
        shown = self.raw[:upto].strip()
        if len(shown) <= self.released:
            return ""
        piece = shown[self.released :]
        self.released = len(shown)
        return piece
