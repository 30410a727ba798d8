"""VQA-RAD, SLAKE and PathVQA inputs -> ``<folder>/<split>.json`` + ``<folder>/images/``, what the ``med-vqa``
reader and the ``vqa-rad`` / ``slake`` / ``pathvqa`` benchmarks read (images relative to ``images/``).

Parquet shards (the Hugging Face copies), the VQA-RAD OSF json and PathVQA pickles become LLaVA-Med's
``test.json`` layout (``id, image, answer_type, question_type, conversations``); SLAKE's own json records (and
LLaVA-Med json) are kept as they are, since the reader filters SLAKE by language. Answers stay exactly as in the
source. A record is dropped, and counted by reason, only when it cannot be used at all: no image, an image that
is missing or does not decode, or a malformed record.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medzoo.app.data_prepare.downloads import sha256_of
from medzoo.app.data_prepare.image_store import ImageStore, safe_relative, write_stream
from medzoo.app.data_prepare.manifest import Manifest
from medzoo.app.data_prepare.summary import Summary
from medzoo.app.data_prepare.vqa_inputs import VqaInput
from medzoo.core.atomic_writes import write_atomically
from medzoo.core.errors import DataError
from medzoo.core.file_io.text_files import read_text_file

ARCHIVE_JUNK = ("__MACOSX/", ".DS_Store")


def llava_med_record(qid: str, question: str, answer: str, answer_type: str, question_type: str,
                     image: str) -> dict[str, Any]:
    """One question in LLaVA-Med's ``test.json`` layout (question first, then ``<image>``, as there)."""
    return {
        "id": qid, "image": image, "answer_type": answer_type.upper(), "question_type": question_type,
        "conversations": [{"from": "human", "value": f"{question}\n<image>"}, {"from": "gpt", "value": answer}],
    }


class VqaConverter:
    """Converts one data set's inputs into ``folder``; counts go to ``summary``."""

    def __init__(self, name: str, folder: Path, summary: Summary, manifest: Manifest,
                 progress: bool = True) -> None:
        self.name, self.folder, self.summary, self.progress = name, folder, summary, progress
        self.manifest = manifest
        self.store = ImageStore(folder / "images")
        self.splits: dict[str, list[dict[str, Any]]] = {}
        self.origin: dict[str, str] = {}

    def convert(self, inputs: list[VqaInput]) -> None:
        if not inputs:
            raise DataError(f"{self.name}: no parquet, json, pkl or zip file among the sources")
        for archive in (i for i in inputs if i.kind == "archive"):
            self.extract(archive.path)
        shards: dict[str, list[Path]] = defaultdict(list)
        for item in inputs:
            if item.kind == "parquet":
                shards[item.split or "train"].append(item.path)
        for split, paths in shards.items():
            self.add(split, "parquet shards", self.parquet_records(split, sorted(paths)))
        for item in inputs:
            if item.kind == "vqa-rad":
                for split in ("train", "test"):
                    self.add(split, str(item.path), self.release_records(item, split))
            elif item.kind == "pathvqa":
                self.add(item.split or "train", str(item.path), self.release_records(item, None))
            elif item.kind in ("slake", "llava-med-test"):
                self.add(item.split or item.path.stem, str(item.path), self.kept_records(item))
        for split in self.splits:
            self.manifest.claim(self.folder / f"{split}.json")  # before any is written: a user's file stops the run
        for split, records in self.splits.items():
            target = self.folder / f"{split}.json"
            lines = ",\n".join(json.dumps(record, ensure_ascii=False) for record in records)
            write_atomically(target, f"[\n{lines}\n]\n" if records else "[]\n")
            self.manifest.add_file(target, sha256_of(target), "converted")
            self.summary.written.append(f"{target} ({len(records)} records)")
            self.summary.converted += len(records)

    def add(self, split: str, origin: str, records: Iterator[dict[str, Any]]) -> None:
        if split in self.origin:
            raise DataError(
                f"{self.name}: two sources for the {split} split ({self.origin[split]} and {origin}); give one"
            )
        self.origin[split] = origin
        self.splits[split] = list(records)

    def skipped(self, split: str, record: str, reason: str) -> None:
        self.summary.skip(f"{split}:{record}", reason)

    # -- image archives --------------------------------------------------------------------------------------

    def extract(self, archive: Path) -> None:
        """Every image of a zip (SLAKE's ``imgs.zip``) into ``images/``, without its single top folder."""
        import zipfile

        try:
            handle = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(f"{archive}: not a readable zip archive ({error})") from None
        with handle:
            members = [m for m in handle.infolist() if not m.is_dir() and not m.filename.startswith(ARCHIVE_JUNK)
                       and "/._" not in m.filename]
            tops = {m.filename.split("/", 1)[0] for m in members if "/" in m.filename}
            strip = len(tops) == 1 and all("/" in m.filename for m in members)
            for member in members:
                name = member.filename.split("/", 1)[1] if strip else member.filename
                relative = safe_relative(name)
                if relative is None:
                    self.summary.skip(f"{archive.name}:{member.filename}", "unsafe path in archive")
                    continue
                target = self.store.root / relative
                if target.is_file() and target.stat().st_size == member.file_size:
                    continue
                with handle.open(member) as stream:
                    write_stream(target, stream)

    # -- the Hugging Face parquet copies -----------------------------------------------------------------------

    def parquet_records(self, split: str, paths: list[Path]) -> Iterator[dict[str, Any]]:
        from medzoo.plugins.datasets.med_vqa import answer_type_of

        index = 0
        for path in paths:
            for row in self._rows(path, f"{self.name} {split}"):
                qid = str(row.get("qid") or f"{self.name}-{split}-{index:05d}")
                index += 1
                cell = row.get("image")
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not isinstance(data, (bytes, bytearray)) or not data:
                    self.skipped(split, qid, "no image bytes")
                    continue
                image, problem = self.store.put_bytes(bytes(data))
                if problem:
                    self.skipped(split, qid, problem)
                    continue
                answer = "" if row.get("answer") is None else str(row["answer"])
                question = "" if row.get("question") is None else str(row["question"]).strip()
                kind = str(row.get("answer_type") or answer_type_of(answer))
                yield llava_med_record(qid, question, answer, kind, str(row.get("question_type") or ""), image)

    def _rows(self, path: Path, label: str) -> Iterator[dict[str, Any]]:
        try:
            import pyarrow.parquet as parquet
        except ImportError:
            raise DataError(f"{path}: reading parquet needs pyarrow (pip install 'medzoo[data]')") from None
        from tqdm.auto import tqdm

        try:
            shard = parquet.ParquetFile(path)
            columns = set(shard.schema_arrow.names)
            if not {"image", "question", "answer"} <= columns:
                raise DataError(f"{path}: expected the columns image, question and answer; found {sorted(columns)}")
            with tqdm(total=shard.metadata.num_rows, desc=label, unit="rows", disable=not self.progress,
                      leave=False) as bar:
                for batch in shard.iter_batches(batch_size=256):
                    rows = batch.to_pylist()
                    yield from rows
                    bar.update(len(rows))
        except DataError:
            raise
        except Exception as error:  # pyarrow raises ArrowInvalid, OSError... for a damaged shard
            if isinstance(error, OSError) and error.errno is not None:
                raise
            raise DataError(f"{path}: not a readable parquet file ({error})") from None

    # -- the original releases -----------------------------------------------------------------------------------

    def release_records(self, item: VqaInput, split: str | None) -> Iterator[dict[str, Any]]:
        """VQA-RAD OSF json (one ``split`` of it) or a PathVQA pickle, images copied from the release."""
        from medzoo.core.interfaces.dataset import LoadReport
        from medzoo.plugins.datasets.med_vqa import candidate_image_roots, read_examples, resolve_image

        options = {"format": item.kind, **({"split": split} if split else {})}
        report = LoadReport(source=str(item.path))
        _, examples = read_examples(item.path, options, report, "skip")
        split = split or item.split or "train"
        for reason, count in report.skipped.items():
            if not reason.startswith("other split"):
                for _ in range(count):
                    self.skipped(split, item.path.name, reason)
        roots = [self.store.root, *candidate_image_roots(item.path, None)]
        folders = (split,) if item.kind == "pathvqa" else ()
        for example in examples:
            if not example.image:
                self.skipped(split, example.question_id, "no image")
                continue
            found = resolve_image(example.image, roots, folders)
            if found is None:
                self.skipped(split, example.question_id, "image not found")
                continue
            name = f"{split}/{found.name}" if item.kind == "pathvqa" else example.image
            image, problem = self.store.put_file(found, name)
            if problem:
                self.skipped(split, example.question_id, problem)
                continue
            yield llava_med_record(example.question_id, example.question, example.answer, example.answer_type,
                                   example.question_type, image)

    def kept_records(self, item: VqaInput) -> Iterator[dict[str, Any]]:
        """SLAKE (or LLaVA-Med) json records kept as they are, their images placed under ``images/``."""
        from medzoo.plugins.datasets.med_vqa import candidate_image_roots, resolve_image

        key = "img_name" if item.kind == "slake" else "image"
        split = item.split or item.path.stem
        text = read_text_file(item.path, "a JSON list of question records")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{item.path}: not a readable json file ({error})") from None
        roots = [self.store.root, *candidate_image_roots(item.path, None)]
        for index, record in enumerate(data if isinstance(data, list) else []):
            qid = str(record.get("qid", record.get("id", index))) if isinstance(record, dict) else str(index)
            if not isinstance(record, dict):
                self.skipped(split, qid, "not a json object")
                continue
            name = record.get(key)
            if not isinstance(name, str) or not name:
                self.skipped(split, qid, "no image")
                continue
            found = resolve_image(name, roots)
            if found is None:
                self.skipped(split, qid, "image not found")
                continue
            _, problem = self.store.put_file(found, name)
            if problem:
                self.skipped(split, qid, problem)
                continue
            yield record
