"""Registers the medical-VQA and ColonINST benchmarks."""

from __future__ import annotations

from medzoo.core.plugin_system.hookspecs import hookimpl
from medzoo.plugins.benchmarks.coloninst import COLONINST_BENCHMARKS
from medzoo.plugins.benchmarks.medvqa import MEDVQA_BENCHMARKS


@hookimpl
def register_benchmarks(register) -> None:
    for benchmark in (*MEDVQA_BENCHMARKS, *COLONINST_BENCHMARKS):
        register(
            benchmark.name,
            benchmark,
            description=(benchmark.__doc__ or benchmark.name).strip().splitlines()[0],
            metric=benchmark.metric,
            headline_metrics=benchmark.headline_metrics,
        )
