"""LLaVA-Med's figures, as its ``download_images.py`` gets them: read ``llava_med_image_urls.jsonl`` (one
``{"pmc_tar_url", "image_file_path", "pair_id"}`` per figure), fetch each PubMed Central open-access package
once (however many figures it holds), take the named member out and write it as ``images/<pair_id>.jpg``.

Unlike the official script, only the named figure is read from the archive (no ``extractall``, so no member
can land outside the image folder), a package is deleted once its figures are out (``--keep-packages`` keeps
it), and the work resumes: a package whose figures are all out is recorded as a finished unit and never fetched
again, and a package cut short continues from its ``.part``. Packages the server no longer has (404) are
counted, listed with their figures in ``llava-med-images.failures.tsv``, and tried again on the next run.
"""

from __future__ import annotations

import gzip
import json
import tarfile
import zlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from medzoo.app.data_prepare.dataset_sources import PMC_FTP
from medzoo.app.data_prepare.downloads import DownloadError, sha256_of
from medzoo.app.data_prepare.fetching import Fetcher
from medzoo.app.data_prepare.image_store import safe_relative, write_stream
from medzoo.app.data_prepare.summary import Summary

KEYS = ("pmc_tar_url", "image_file_path", "pair_id")
PACKAGE_FAILED = "package not fetched"
NOT_IN_PACKAGE = "figure not in package"
BAD_ARCHIVE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass
class Package:
    url: str
    pmc_id: str
    #: (pair_id, member path inside the archive)
    figures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Outcome:
    """What happened to one package (built in a worker thread, counted by the main thread)."""

    package: Package
    status: str = "done"  # done | reused | failed
    fetched: bool = False
    extracted: int = 0
    reason: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)


def pmc_id_of(url: str) -> str:
    return url.rsplit("/", 1)[-1].removesuffix(".tar.gz").removesuffix(".tgz")


def mirrored(url: str, mirror: str | None) -> str:
    """``url`` with the NCBI FTP prefix replaced by ``mirror`` (``--pmc-mirror``)."""
    if mirror and url.startswith(PMC_FTP):
        return mirror.rstrip("/") + "/" + url[len(PMC_FTP):]
    return url


def wanted_figures(files: list[Path]) -> set[str]:
    """The pair ids (figure names without ``.jpg``) the LLaVA-Med json files ``files`` refer to."""
    from medzoo.app.data_prepare.conversations import load_records

    wanted: set[str] = set()
    for path in files:
        for record in load_records(path):
            if isinstance(record, dict) and isinstance(record.get("image"), str):
                wanted.add(Path(record["image"]).stem)
    return wanted


def read_url_list(path: Path, summary: Summary, mirror: str | None = None,
                  wanted: set[str] | None = None) -> list[Package]:
    """The packages of ``llava_med_image_urls.jsonl``, in file order (only the figures in ``wanted`` when given);
    bad lines are counted by reason."""
    packages: dict[str, Package] = {}
    pairs: set[str] = set()
    unwanted = 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                summary.skip(f"line {number}", "not a json line")
                continue
            if not isinstance(record, dict) or not all(isinstance(record.get(k), str) and record[k] for k in KEYS):
                summary.skip(f"line {number}", "missing pmc_tar_url, image_file_path or pair_id")
                continue
            pair, member = record["pair_id"], record["image_file_path"]
            if "/" in pair or safe_relative(f"{pair}.jpg") is None or safe_relative(member) is None:
                summary.skip(f"line {number}", "unsafe pair_id or image_file_path")
                continue
            if pair in pairs:
                summary.skip(pair, "duplicate pair_id")
                continue
            if wanted is not None and pair not in wanted:
                unwanted += 1
                continue
            pairs.add(pair)
            url = mirrored(record["pmc_tar_url"], mirror)
            packages.setdefault(url, Package(url, pmc_id_of(url))).figures.append((pair, member))
    if wanted is not None:
        summary.notes.append(f"{len(pairs)} figures wanted by --only-for, {unwanted} others left out")
    return list(packages.values())


class PmcImages:
    """Fetches packages and extracts figures into ``images``, ``workers`` packages at a time."""

    def __init__(self, fetcher: Fetcher, images: Path, packages: Path, *, keep_packages: bool = False,
                 workers: int = 4, progress: bool = True) -> None:
        self.fetcher, self.images, self.packages = fetcher, images, packages
        self.keep_packages, self.workers, self.progress = keep_packages, max(1, workers), progress

    def run(self, packages: list[Package]) -> None:
        from tqdm.auto import tqdm

        summary = self.fetcher.summary
        pool = ThreadPoolExecutor(self.workers)
        try:
            with tqdm(total=len(packages), unit="pkg", desc=summary.name, disable=not self.progress) as bar:
                pending: set[Future] = set()
                queue = iter(packages)
                while True:
                    while len(pending) < self.workers * 4:
                        package = next(queue, None)
                        if package is None:
                            break
                        pending.add(pool.submit(self.prepare, package))
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        self.count(future.result(), summary)  # a storage error ends the run here
                        bar.update()
                    bar.set_postfix(failed=summary.failed, refresh=False)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C or an error: queued packages are not started

    @staticmethod
    def count(outcome: Outcome, summary: Summary) -> None:
        package = outcome.package
        if outcome.status == "failed":
            figures = " ".join(pair for pair, _ in package.figures)
            summary.fail(package.pmc_id, f"{outcome.reason}; figures {figures}")
            summary.skipped[PACKAGE_FAILED] += len(package.figures)
            return
        if outcome.status == "reused" or not outcome.fetched:
            summary.reused += 1
        else:
            summary.fetched += 1
        summary.converted += outcome.extracted
        for pair, reason in outcome.skipped:
            summary.skip(f"{package.pmc_id}/{pair}", reason)

    def prepare(self, package: Package) -> Outcome:
        manifest = self.fetcher.manifest
        done = manifest.units.get(package.pmc_id)
        if done is not None:
            return Outcome(package, "reused", extracted=int(done.get("extracted", 0)),
                           skipped=[tuple(item) for item in done.get("skipped", [])])
        missing = [(pair, name) for pair, name in package.figures if not self.present(pair)]
        if not missing:  # every figure is out already (e.g. by the official script): nothing to fetch
            manifest.add_unit(package.pmc_id, extracted=len(package.figures), skipped=[])
            return Outcome(package, "reused", extracted=len(package.figures))
        archive = self.packages / f"{package.pmc_id}.tar.gz"
        outcome = Outcome(package)
        if not self.fetcher.reuse(archive):
            try:
                self.fetcher.fetch_url([package.url], archive)
            except DownloadError as error:
                return Outcome(package, "failed", reason=error.reason)
            outcome.fetched = True
        try:
            self.extract(archive, package, outcome)
        except BAD_ARCHIVE as error:
            archive.unlink(missing_ok=True)  # fetched anew on the next run
            return Outcome(package, "failed", reason=f"unreadable package ({type(error).__name__}: {error})"[:200])
        manifest.add_unit(package.pmc_id, extracted=outcome.extracted, skipped=outcome.skipped)
        if not self.keep_packages:
            archive.unlink(missing_ok=True)
        return outcome

    def present(self, pair: str) -> bool:
        """The figure is finished, or a non-empty file already lies there (then recorded as it is)."""
        target = self.images / f"{pair}.jpg"
        manifest = self.fetcher.manifest
        if manifest.finished(target) is not None:
            return True
        if target.is_file() and target.stat().st_size > 0:
            manifest.add_file(target, sha256_of(target), "already on disk")
            return True
        return False

    def extract(self, archive: Path, package: Package, outcome: Outcome) -> None:
        manifest = self.fetcher.manifest
        with tarfile.open(archive, "r:*") as tar:
            members = {member.name.removeprefix("./"): member for member in tar.getmembers()}
            for pair, name in package.figures:
                target = self.images / f"{pair}.jpg"
                if manifest.finished(target) is not None:
                    outcome.extracted += 1
                    continue
                member = members.get(name)
                if member is None or not member.isfile():
                    outcome.skipped.append((pair, NOT_IN_PACKAGE))
                    continue
                stream = tar.extractfile(member)
                if stream is None:
                    outcome.skipped.append((pair, NOT_IN_PACKAGE))
                    continue
                with stream:
                    write_stream(target, stream)
                manifest.add_file(target, sha256_of(target), f"{package.url}#{name}")
                outcome.extracted += 1

