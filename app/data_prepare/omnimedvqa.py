"""Preparing OmniMedVQA: the release archive (``OmniMedVQA.zip`` on the hub, or a local copy) unpacked, or an
already unpacked folder checked where it lies, then its open-access questions read as the benchmark reads them.

Layout (the dataset card of ``foreverbeliever/OmniMedVQA``): ``OmniMedVQA/Images/<source>/...`` and
``OmniMedVQA/QA_information/{Open-access,Restricted-access}/<source>.json``; image paths in the json files start
at the ``OmniMedVQA`` folder. Only open-access images are distributed, so only open-access questions are usable;
restricted-access records are counted, not asked. The published size is the whole benchmark's 127,995 QA items
(open and restricted access together; the dataset card and arXiv 2402.09181), which the two counts are checked
against: a release that differs is reported, not refused.
"""

from __future__ import annotations

from pathlib import Path

from medzoo.app.data_prepare.multiple_choice import unpack
from medzoo.app.data_prepare.summary import Summary
from medzoo.core.errors import DataError

#: QA items of the whole benchmark, open and restricted access (dataset card; arXiv 2402.09181)
PUBLISHED_QA_ITEMS = 127_995
QA_FOLDER = "QA_information"
OPEN_ACCESS = "Open-access"
RESTRICTED_ACCESS = "Restricted-access"


def release_folders(root: Path) -> list[Path]:
    """The OmniMedVQA folders under ``root`` (each holding ``QA_information/Open-access``), shallowest first."""
    if (root / QA_FOLDER / OPEN_ACCESS).is_dir():
        return [root]
    found = sorted((qa.parent for qa in root.rglob(QA_FOLDER) if (qa / OPEN_ACCESS).is_dir()),
                   key=lambda folder: (len(folder.parts), str(folder)))
    return found


def count_records(folder: Path) -> int:
    """How many question records the json files of one ``QA_information`` access folder hold (0: no folder)."""
    from medzoo.plugins.benchmarks.multiple_choice.omnimedvqa_file import read_records

    return sum(len(read_records(file)) for file in sorted(folder.glob("*.json"))) if folder.is_dir() else 0


def prepare_omnimedvqa(paths: list[Path], folder: Path, summary: Summary) -> None:
    """Unpack the zip files among ``paths`` into ``folder`` (a folder given as a path is checked in place), then
    for each OmniMedVQA folder found: usable open-access questions counted as converted, the others skipped by
    reason, and the record counts compared with the published size."""
    from medzoo.plugins.benchmarks.multiple_choice.omnimedvqa_file import read_omnimedvqa

    roots: list[Path] = []
    for path in paths:
        if path.is_file() and path.suffix.lower() == ".zip":
            count = unpack(path, folder, summary)
            summary.written.append(f"{folder} ({count} files from {path.name})")
            roots.append(folder)
        elif path.is_dir():
            roots.append(path)
        else:
            raise DataError(f"{path}: expected OmniMedVQA.zip or the unpacked OmniMedVQA folder "
                            f"(holding {QA_FOLDER}/{OPEN_ACCESS})")
    releases = list(dict.fromkeys(release for root in roots for release in release_folders(root)))
    if not releases:
        raise DataError(f"omnimedvqa: no {QA_FOLDER}/{OPEN_ACCESS} folder in {', '.join(map(str, roots))}")
    for release in releases:
        questions, report = read_omnimedvqa(release, require_images=True)
        summary.converted += len(questions)
        for reason, count in report.skipped.items():
            summary.skipped[reason] += count
            summary.problems += [(f"{release.name}:{example}", "skipped", reason) for example in report.examples[reason]]
        open_access = count_records(release / QA_FOLDER / OPEN_ACCESS)
        restricted = count_records(release / QA_FOLDER / RESTRICTED_ACCESS)
        total = open_access + restricted
        check = "as published" if total == PUBLISHED_QA_ITEMS else f"the published release has {PUBLISHED_QA_ITEMS:,}"
        summary.notes.append(
            f"{len(questions)} open-access questions usable ({report.summary()}); QA items "
            f"{open_access:,} open-access + {restricted:,} restricted-access = {total:,} ({check}); use "
            f"`medzoo eval ... -b omnimedvqa --data {release}`"
        )
        if not release.is_relative_to(folder):
            summary.written.append(f"{release} (checked in place)")
