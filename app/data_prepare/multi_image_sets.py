"""Preparing the multi-image benchmarks: MMMU's Health & Medicine validation parquet files and MedXpertQA's
``MM/test.jsonl`` with ``images.zip``. Each file is placed at its path in the publisher's layout (hub files at
their repository path, a folder's files at their path inside it), archives are unpacked beside them, and the
result is read as the benchmark reads it, so the summary says how many questions are usable and why the others
are not."""

from __future__ import annotations

from pathlib import Path

from medzoo.app.data_prepare.image_store import place
from medzoo.app.data_prepare.multiple_choice import unpack
from medzoo.app.data_prepare.summary import Summary
from medzoo.core.errors import DataError

WANTED_SUFFIXES = (".parquet", ".jsonl", ".zip")


def _layout(paths: list[Path], hub_dir: Path, benchmark: str) -> list[tuple[Path, Path]]:
    """(file, its path in the output folder) for every wanted file under ``paths``."""
    placed = []
    for given in paths:
        files = [given] if given.is_file() else sorted(p for p in given.rglob("*") if p.is_file())
        for file in files:
            if file.suffix.lower() not in WANTED_SUFFIXES:
                continue
            if file.is_relative_to(hub_dir):
                relative = file.relative_to(hub_dir)
            elif given.is_dir():
                relative = file.relative_to(given)
            elif benchmark == "medxpertqa-mm" and file.suffix.lower() == ".jsonl":
                relative = Path("MM") / file.name  # a lone jsonl goes where the snapshot keeps it
            else:
                relative = Path(file.name)
            placed.append((file, relative))
    return placed


def _check(benchmark: str, folder: Path):
    """The benchmark's reader over the prepared folder: (questions, report)."""
    if benchmark == "mmmu-med":
        from medzoo.plugins.benchmarks.multiple_choice.mmmu_file import read_mmmu

        return read_mmmu(folder)
    from medzoo.plugins.benchmarks.multiple_choice.medxpertqa_file import read_medxpertqa

    return read_medxpertqa(folder)


def prepare_multi_image_set(paths: list[Path], folder: Path, summary: Summary, benchmark: str,
                            hub_dir: Path) -> None:
    """Place the files under ``paths`` into ``folder`` (``hub_dir``: where hub files were downloaded), unpack
    the archives there, then read the result with the benchmark's reader: usable questions are counted as
    converted, the others skipped by reason."""
    placed = _layout(paths, hub_dir, benchmark)
    if not placed:
        raise DataError(f"{benchmark}: no parquet, jsonl or zip file among the sources")
    for file, relative in placed:
        if file.suffix.lower() == ".zip":
            count = unpack(file, folder, summary)
            summary.written.append(f"{folder} ({count} files from {file.name})")
            continue
        target = folder / relative
        if target.resolve() != file.resolve():
            place(file, target)
        summary.written.append(str(target))
    questions, report = _check(benchmark, folder)
    summary.converted += len(questions)
    for reason, count in report.skipped.items():
        summary.skipped[reason] += count
        summary.problems += [(example, "skipped", reason) for example in report.examples[reason]]
    summary.notes.append(f"{benchmark}: {len(questions)} questions usable ({report.summary()})")
