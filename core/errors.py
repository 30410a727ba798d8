"""User-facing errors: each renders as one line naming the file, key or record and what was expected."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MedzooError(Exception):
    """An error caused by user input; the CLI prints it as one line and exits with code 2."""

    exit_code = 2


class PluginError(MedzooError):
    """A plugin failed to load, registered a bad name, or a component name is unknown."""


class RecipeError(MedzooError):
    """A recipe file is unreadable or does not match the schema."""


class DataError(MedzooError):
    """A dataset file or record is malformed and the policy is to stop."""


class TrainingError(MedzooError):
    """Training cannot continue (non-finite loss, incompatible checkpoint...)."""


class InteropError(MedzooError):
    """A checkpoint cannot be imported, exported or merged as asked."""


class ExportRefused(InteropError):
    """The model holds something the target format cannot represent (a component's ``llava_hf_export`` raises
    it, in one line naming the component and why)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
