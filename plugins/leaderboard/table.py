"""The leaderboard table: one row per model, column groups per (benchmark, split), headline metrics inside."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

COUNT_KEYS = frozenset({"n", "n_open", "n_closed", "n_missing", "n_malformed"})
DEFAULT_SPLITS = ("test", "")
#: column groups come in this order (real benchmarks, then their synthetic twins), unknown ones after
BENCHMARK_ORDER = ("vqa-rad", "slake", "pathvqa", "coloninst-cls", "coloninst-reg", "coloninst-rec")
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
    """One model's scores (percent) per column group; ``kind`` is ``run`` or ``published``."""

    model: str
    source: str
    kind: str = "run"
    details: str = ""
    scores: dict[ColumnGroup, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Column:
    group: ColumnGroup
    metric: str

    @property
    def key(self) -> str:
        return f"{self.group.key}:{self.metric}"


@dataclass
class Leaderboard:
    columns: list[Column]
    rows: list[ModelRow]

    def value(self, row: ModelRow, column: Column) -> float | None:
        value = row.scores.get(column.group, {}).get(column.metric)
        return None if value is None else float(value)

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
    declared = registration.info.get("headline_metrics") or getattr(registration.factory, "headline_metrics", None)
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
    """Columns: each group's headline metrics that at least one row reports (every reported metric for a
    benchmark without declared headline metrics), groups in ``group_sort_key`` order."""
    groups: dict[ColumnGroup, list[str]] = {}
    for row in rows:
        for group, metrics in row.scores.items():
            seen = groups.setdefault(group, [])
            seen.extend(metric for metric in metrics if metric not in seen and metric not in COUNT_KEYS)
    columns = []
    for group, reported in sorted(groups.items(), key=lambda entry: group_sort_key(entry[0])):
        declared = headline(group.benchmark)
        chosen = [metric for metric in declared if metric in reported] if declared else reported
        columns.extend(Column(group, metric) for metric in chosen)
    return Leaderboard(columns=columns, rows=list(rows))
