"""Captions for columns measured by medzoo's own scoring rather than a published one (ColonINST CAP).

A benchmark class that declares ``scoring_protocol`` (the line its ``metrics.json`` records) gets its columns
marked ``[medzoo's own]`` and a caption under every table that shows them: which metrics, how they are tokenised,
and what is not computed. Its figures compare only with other medzoo figures of the same benchmark.
"""

from __future__ import annotations

from medzoo.app.leaderboard.table import ColumnGroup, Leaderboard
from medzoo.core.interfaces.benchmark import benchmark_class

OWN_MARK = "[medzoo's own]"
#: what a captioning column does not report, and why (checked here: ``evaluate.load("meteor")`` cannot fetch its
#: script offline, and NLTK's ``meteor_score`` raises LookupError for WordNet as soon as a word is left after
#: exact and stem matching; ``nltk.download("wordnet")`` needs raw.githubusercontent.com)
NOT_COMPUTED = {
    "captions": "METEOR is not computed: evaluate's meteor needs NLTK's WordNet data, a run-time download that "
                "cannot be made offline",
}


def scoring_protocol(benchmark: str) -> tuple[str, str] | None:
    """(the scoring line, the metric family) a registered benchmark declares as medzoo's own, or None."""
    from medzoo.core.errors import PluginError
    from medzoo.core.plugin_system.manager import components

    try:
        declared_by = benchmark_class(components().get("benchmark", benchmark).factory)
    except PluginError:
        return None
    line = getattr(declared_by, "scoring_protocol", None)
    if not isinstance(line, str) or not line.startswith("medzoo's own"):
        return None
    return line, str(getattr(declared_by, "metric", ""))


def column_label(group: ColumnGroup) -> str:
    """A column group's label, marked when medzoo's own scoring measured it."""
    return f"{group.label} {OWN_MARK}" if scoring_protocol(group.benchmark) else group.label


def column_notes(board: Leaderboard) -> list[str]:
    """One caption per benchmark of the board scored by medzoo's own protocol (in column order)."""
    notes = []
    for benchmark in dict.fromkeys(group.benchmark for group in board.groups):
        declared = scoring_protocol(benchmark)
        if declared is None:
            continue
        line, family = declared
        metrics = ", ".join(dict.fromkeys(c.metric for c in board.columns if c.group.benchmark == benchmark))
        caveat = NOT_COMPUTED.get(family)
        notes.append(f"{benchmark} {OWN_MARK} ({metrics}): scored by {line}; comparable only with other medzoo "
                     f"{benchmark} figures" + (f". {caveat}" if caveat else ""))
    return notes
