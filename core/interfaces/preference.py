"""Preference records: a prompt (conversation turns ending with the user's) and two answers, one preferred."""

from __future__ import annotations

from dataclasses import dataclass

from medzoo.core.interfaces.dataset import Record


@dataclass
class PreferenceRecord(Record):
    """``messages`` are the prompt turns (the last is the user's); ``chosen`` is the preferred answer to them,
    ``rejected`` the dispreferred one. Readers refuse a record whose answers are missing, empty or equal."""

    chosen: str = ""
    rejected: str = ""
