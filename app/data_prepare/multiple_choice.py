"""Preparing a multiple-choice benchmark (PMC-VQA): its csv files copied, its image archives unpacked beside
them with their own paths (PMC-VQA's ``figures/`` or ``images/``), and each test csv read as the benchmark reads
it, so the summary says how many questions are usable and why the others are not."""

from __future__ import annotations

import zipfile
from pathlib import Path

from medzoo.app.data_prepare.image_store import place, safe_relative, write_stream
from medzoo.app.data_prepare.summary import Summary
from medzoo.core.errors import DataError

ARCHIVE_JUNK = ("__MACOSX/",)


def unpack(archive: Path, folder: Path, summary: Summary) -> int:
    """Every file of ``archive`` into ``folder`` at its own path (unsafe paths skipped and counted; a file
    already there with the same size kept); returns how many files it holds."""
    try:
        handle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{archive}: not a readable zip archive ({error})") from None
    count = 0
    with handle:
        for member in handle.infolist():
            if member.is_dir() or member.filename.startswith(ARCHIVE_JUNK) or "/._" in member.filename:
                continue
            relative = safe_relative(member.filename)
            if relative is None:
                summary.skip(f"{archive.name}:{member.filename}", "unsafe path in archive")
                continue
            target = folder / relative
            count += 1
            if target.is_file() and target.stat().st_size == member.file_size:
                continue
            with handle.open(member) as stream:
                write_stream(target, stream)
    return count


def prepare_multiple_choice(paths: list[Path], folder: Path, summary: Summary, benchmark: str) -> None:
    """Copy the csv files and unpack the zips found under ``paths`` into ``folder``, then check every test csv
    (``test*.csv``) with the benchmark's reader: usable questions are counted as converted, the others skipped
    by reason."""
    from medzoo.plugins.benchmarks.multiple_choice.pmc_vqa_file import read_pmc_vqa

    files = [path for given in paths for path in ([given] if given.is_file() else sorted(given.rglob("*")))
             if path.is_file() and path.suffix.lower() in (".csv", ".zip")]
    if not files:
        raise DataError(f"{benchmark}: no csv or zip file among the sources")
    tests = []
    for file in files:
        if file.suffix.lower() == ".zip":
            count = unpack(file, folder, summary)
            summary.written.append(f"{folder} ({count} files from {file.name})")
            continue
        target = folder / file.name
        if target.resolve() != file.resolve():
            place(file, target)
        summary.written.append(str(target))
        if target.name.lower().startswith("test"):
            tests.append(target)
    for test in tests:
        questions, report = read_pmc_vqa(test, require_images=True)
        summary.converted += len(questions)
        for reason, count in report.skipped.items():
            summary.skipped[reason] += count
            summary.problems += [(f"{test.name}:{example}", "skipped", reason) for example in report.examples[reason]]
        summary.notes.append(f"{test.name}: {len(questions)} questions usable ({report.summary()})")
