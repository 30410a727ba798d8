"""The leaderboard table: one row per model and protocol, column groups per (benchmark, split), headline metrics
inside, and one section per protocol (rows of different protocols are never ranked against each other)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from medzoo.app.leaderboard.protocols import protocol_order
from medzoo.core.interfaces.benchmark import benchmark_class

COUNT_KEYS = frozenset({"n", "n_open", "n_closed", "n_missing", "n_malformed", "n_right"})
#: reported numbers that are not scores (no "best" among them)
UNRANKED = frozenset({"seconds"})
DEFAULT_SPLITS = ("test", "")
#: column groups come in this order (real benchmarks, then their synthetic twins), unknown ones after
BENCHMARK_ORDER = ("vqa-rad", "slake", "pathvqa", "coloninst-cls", "coloninst-reg", "coloninst-rec", "coloninst-cap",
                   "pmc-vqa", "omnimedvqa", "gmai-mmbench", "mmmu-med", "medxpertqa-mm")
SPLIT_ORDER = ("test", "seen", "unseen")


@dataclass(frozen=True)
class ColumnGroup:
    """A benchmark on one split (``test`` for medical VQA; ``seen``/``unseen`` for ColonINST)."""

    benchmark: str
    split: str = "test"

    @property
    def label(self) -> str:
        return self.benchmark if self.split in DEFAULT_SPLITS else f"{self.benchmark} ({self.split})"

    @property
    def key(self) -> str:
        return f"{self.benchmark}:{self.split}"


@dataclass
class ModelRow:
    """One model's scores (percent) per column group under one protocol (``protocols.PROTOCOLS``); ``kind`` is
    ``run`` or ``published``; ``basis`` says why a run row has its protocol (what its training recorded)."""

    model: str
    source: str
    kind: str = "run"
    details: str = ""
    scores: dict[ColumnGroup, dict[str, float]] = field(default_factory=dict)
    protocol: str = ""
    basis: str = ""


@dataclass(frozen=True)
class Column:
    group: ColumnGroup
    metric: str

    @property
    def key(self) -> str:
        return f"{self.group.key}:{self.metric}"


@dataclass
class Leaderboard:
    """Columns and rows of the whole board; ``sections``: one board per protocol, the only place to rank."""

    columns: list[Column]
    rows: list[ModelRow]
    protocol: str = ""
    sections: list[Leaderboard] = field(default_factory=list)

    def value(self, row: ModelRow, column: Column) -> float | None:
        value = row.scores.get(column.group, {}).get(column.metric)
        return None if value is None else float(value)

    def best(self, column: Column) -> float | None:
        """The highest value of a column, when at least two rows report it and every row shares one protocol
        (a board mixing protocols ranks nothing)."""
        if len({row.protocol for row in self.rows}) != 1 or column.metric in UNRANKED:
            return None
        values = [value for row in self.rows if (value := self.value(row, column)) is not None]
        return max(values) if len(values) > 1 else None

    @property
    def groups(self) -> list[ColumnGroup]:
        return list(dict.fromkeys(column.group for column in self.columns))


def registered_headline_metrics(benchmark: str) -> tuple[str, ...] | None:
    """The headline metrics a registered benchmark declares, or None for an unknown benchmark."""
    from medzoo.core.errors import PluginError
    from medzoo.core.plugin_system.manager import components

    try:
        registration = components().get("benchmark", benchmark)
    except PluginError:
        return None
    declared_by = benchmark_class(registration.factory)
    declared = registration.info.get("headline_metrics") or (declared_by.headline_metrics if declared_by else None)
    return tuple(declared) if declared else None


def group_sort_key(group: ColumnGroup) -> tuple:
    """Known benchmarks first (real before synthetic), then by name; splits test, seen, unseen."""
    name = group.benchmark.removeprefix("synth-")
    rank = BENCHMARK_ORDER.index(name) if name in BENCHMARK_ORDER else len(BENCHMARK_ORDER)
    split = SPLIT_ORDER.index(group.split) if group.split in SPLIT_ORDER else len(SPLIT_ORDER)
    return (group.benchmark.startswith("synth-"), rank, name, split, group.split)


def build_leaderboard(
    rows: Sequence[ModelRow],
    headline: Callable[[str], Iterable[str] | None] = registered_headline_metrics,
) -> Leaderboard:
    """The board and its sections: one per protocol, those of run rows first (in row order), then the others in
    the vocabulary's order; each has only the columns its own rows report."""
    protocols = list(dict.fromkeys(row.protocol for row in rows if row.kind == "run"))
    protocols += sorted({row.protocol for row in rows} - set(protocols), key=lambda name: (protocol_order(name), name))
    sections = [_board([row for row in rows if row.protocol == name], headline, name) for name in protocols]
    board = _board(rows, headline, protocols[0] if len(protocols) == 1 else "")
    board.sections = sections
    return board


def _board(
    rows: Sequence[ModelRow], headline: Callable[[str], Iterable[str] | None], protocol: str
) -> Leaderboard:
    """Columns: each group's headline metrics that at least one row reports (every reported metric for a
    benchmark without declared headline metrics), then the published figures no headline metric names (a
    source's ``overall_accuracy``, ``token_f1``), groups in ``group_sort_key`` order."""
    groups: dict[ColumnGroup, list[str]] = {}
    published: dict[ColumnGroup, list[str]] = {}
    for row in rows:
        for group, metrics in row.scores.items():
            seen = groups.setdefault(group, [])
            seen.extend(metric for metric in metrics if metric not in seen and metric not in COUNT_KEYS)
            if row.kind == "published":
                published.setdefault(group, []).extend(metrics)
    columns = []
    for group, reported in sorted(groups.items(), key=lambda entry: group_sort_key(entry[0])):
        declared = headline(group.benchmark)
        chosen = [metric for metric in declared if metric in reported] if declared else reported
        chosen += [metric for metric in dict.fromkeys(published.get(group, [])) if metric not in chosen]
        columns.extend(Column(group, metric) for metric in chosen)
    return Leaderboard(columns=columns, rows=list(rows), protocol=protocol)
