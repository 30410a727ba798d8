"""Preparing GMAI-MMBench: VLMEvalKit's TSV files (base64 images) placed in the output folder and read as the
benchmark reads them.

Files (open-compass/VLMEvalKit e8e78f0, ``vlmeval/dataset/image_mcq.py``, ``GMAIMMBenchDataset.DATASET_URL``
and ``DATASET_MD5``): ``GMAI-MMBench_VAL.tsv`` from the hub dataset ``VLMEval/GMAI-MMBench``, and the test split
as ``GMAI_mm_bench_TEST_part_1.tsv`` .. ``_11.tsv`` from ``OpenGVLab/GMAI-MMBench`` (gated: accept its
conditions on the hub first). The VAL file carries an ``answer`` column; the test files do not (the authors
withhold the answers: uni-medical/GMAI-MMBench README, commit 1ee81be), so their rows are counted and their
layout checked, but they cannot be scored here. Each file's md5 is compared with VLMEvalKit's (a different
digest is reported, not refused: the hub copy may be a later revision). No published split size is checked:
none was found in a source that could be read and cited.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

from medzoo.app.data_prepare.image_store import place
from medzoo.app.data_prepare.summary import Summary
from medzoo.core.errors import DataError

VAL_FILE = "GMAI-MMBench_VAL.tsv"
#: the md5 VLMEvalKit checks each file against (GMAIMMBenchDataset.DATASET_MD5, open-compass/VLMEvalKit e8e78f0)
VLMEVALKIT_MD5 = {
    VAL_FILE: "254bd581627866f1c499d3d6b4422324",
    "GMAI_mm_bench_TEST_part_1.tsv": "900d735231230a63f4ed45665c078ef4",
    "GMAI_mm_bench_TEST_part_2.tsv": "1b27ab621386945d7e4a765ad2d22b0e",
    "GMAI_mm_bench_TEST_part_3.tsv": "44bdc2b6267dd505d529b8cad06f0fb2",
    "GMAI_mm_bench_TEST_part_4.tsv": "5a04a04fcac9f1466709f242fdb80acb",
    "GMAI_mm_bench_TEST_part_5.tsv": "c70baf8909eda9af0ddeab275c721336",
    "GMAI_mm_bench_TEST_part_6.tsv": "825abc39596b644dead9350d0cfa3b96",
    "GMAI_mm_bench_TEST_part_7.tsv": "defb8aed2fb77365a76b6b9abd6a2701",
    "GMAI_mm_bench_TEST_part_8.tsv": "ff490d60b85f2bb0abb67a435b298c65",
    "GMAI_mm_bench_TEST_part_9.tsv": "ff67c86f40da93b09139ac1d1ba5dc6b",
    "GMAI_mm_bench_TEST_part_10.tsv": "3dae94627b9ac0fe00180d4780fbf6dc",
    "GMAI_mm_bench_TEST_part_11.tsv": "d08dc813f0eb6bbab63cae2a9d113c4b",
}
#: the columns a file without answers (a test part) must still have
UNANSWERED_COLUMNS = ("index", "question", "a", "b", "image")


def tsv_files(paths: list[Path]) -> list[Path]:
    """The ``.tsv`` files among ``paths`` (folders searched, hidden entries passed over); a file named directly
    that is not a ``.tsv`` is an error."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            if path.suffix.lower() != ".tsv":
                raise DataError(f"{path}: expected VLMEvalKit's GMAI-MMBench tsv ({VAL_FILE} or a test part)")
            found.append(path)
        elif path.is_dir():
            found += sorted(file for file in path.rglob("*.tsv") if file.is_file()
                            and not any(part.startswith(".") for part in file.relative_to(path).parts))
    return list(dict.fromkeys(found))


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header_of(path: Path) -> list[str]:
    """The column names of a tsv (its first line); [] for an empty file."""
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        first = handle.readline()
    return next(csv.reader([first], delimiter="\t"), []) if first.strip() else []


def count_rows(path: Path) -> int:
    """How many rows a tsv holds below its header (cells may span lines, as csv quoting allows)."""
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        return max(sum(1 for _ in csv.reader(handle, delimiter="\t")) - 1, 0)


def checksum_note(path: Path) -> str:
    expected = VLMEVALKIT_MD5.get(path.name)
    if expected is None:
        return "no md5 to compare with (not a file VLMEvalKit names)"
    found = md5_of(path)
    if found == expected:
        return "md5 as VLMEvalKit expects"
    return f"md5 {found} differs from VLMEvalKit's {expected} (another revision of the file)"


def check_layout(path: Path) -> bool:
    """Whether ``path`` has answers (the VAL file) or not (a test part); a tsv that has not the columns of
    either is one DataError line naming the file and the columns found and expected."""
    from medzoo.plugins.benchmarks.multiple_choice.gmai_file import REQUIRED

    header = header_of(path)
    found = {name.lower() for name in header}
    answered = "answer" in found
    if not all(column in found for column in (REQUIRED if answered else UNANSWERED_COLUMNS)):
        raise DataError(
            f"{path}: not a GMAI-MMBench tsv: columns {', '.join(header) or '(none)'}; expected index, question, "
            "A, B (C, D, E), answer (absent from the test parts), image (VLMEvalKit's layout)"
        )
    return answered


def prepare_gmai_mmbench(paths: list[Path], folder: Path, summary: Summary) -> None:
    """Place every tsv under ``paths`` in ``folder``, then read each with the benchmark's reader (its images
    decoded into ``<stem>_images`` beside it, where the benchmark looks): usable questions counted as converted,
    the others skipped by reason; a file without answers is counted, not scored."""
    from medzoo.plugins.benchmarks.multiple_choice.gmai_file import read_gmai

    files = tsv_files(paths)
    if not files:
        raise DataError(f"gmai-mmbench: no .tsv file in {', '.join(map(str, paths))} (expected {VAL_FILE})")
    answered = {file: check_layout(file) for file in files}  # every file checked before any is placed
    for file in files:
        target = folder / file.name
        if target.resolve() != file.resolve():
            place(file, target)
        summary.written.append(str(target))
        if not answered[file]:
            summary.notes.append(
                f"{target.name}: {count_rows(target):,} questions without answers (the authors withhold the test "
                f"answers), so medzoo cannot score them; {checksum_note(target)}"
            )
            continue
        questions, report = read_gmai(target, require_images=True)
        summary.converted += len(questions)
        for reason, count in report.skipped.items():
            summary.skipped[reason] += count
            summary.problems += [(f"{target.name}:{example}", "skipped", reason) for example in report.examples[reason]]
        summary.notes.append(
            f"{target.name}: {len(questions):,} questions usable ({report.summary()}); {checksum_note(target)}; "
            f"use `medzoo eval MODEL -b gmai-mmbench --data {target}`"
        )
