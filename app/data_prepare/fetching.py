"""A file fetched through the manifest: reused when finished, else downloaded (mirrors in order) or taken from
the hub, its sha256 checked and recorded; every outcome is counted in the :class:`Summary`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medzoo.app.data_prepare import hub
from medzoo.app.data_prepare.downloads import (
    ChecksumMismatch,
    DownloadError,
    DownloadSettings,
    download,
    make_session,
    sha256_of,
)
from medzoo.app.data_prepare.manifest import Manifest
from medzoo.app.data_prepare.summary import Summary


class Fetcher:
    """Fetches files for one data set; one HTTP session per thread."""

    def __init__(self, manifest: Manifest, settings: DownloadSettings, summary: Summary,
                 verify: bool = False) -> None:
        self.manifest = manifest
        self.verify = verify
        self.settings = settings
        self.summary = summary
        self._local = threading.local()

    @property
    def session(self) -> Any:
        if not hasattr(self._local, "session"):
            self._local.session = make_session(self.settings)
        return self._local.session

    def reuse(self, target: Path, sha256: str | None = None) -> bool:
        """True when ``target`` is finished: in the manifest with its size (and, with ``verify``, its sha256), or
        on disk with the expected sha256 (finished just before a kill; then recorded)."""
        entry = self.manifest.finished(target)
        if entry is not None and (sha256 is None or entry.get("sha256") == sha256):
            if not self.verify or sha256_of(target) == entry.get("sha256"):
                return True
            target.unlink()  # changed on disk since it was recorded: fetched anew
        if sha256 is not None and target.is_file() and sha256_of(target) == sha256:
            self.manifest.add_file(target, sha256, "adopted: already on disk with the expected sha256")
            return True
        return False

    def url(self, urls: Sequence[str], target: Path, *, sha256: str | None = None, size: int | None = None,
            unit: str | None = None) -> Path | None:
        """``target`` from the first of ``urls`` that works (reused when finished); None, with the failure
        counted under ``unit``, when none does."""
        if self.reuse(target, sha256):
            self.summary.reused += 1
            return target
        try:
            self.fetch_url(urls, target, sha256=sha256, size=size)
        except DownloadError as error:
            self.summary.fail(unit or target.name, error.reason)
            return None
        self.summary.fetched += 1
        return target

    def fetch_url(self, urls: Sequence[str], target: Path, *, sha256: str | None = None,
                  size: int | None = None) -> None:
        """Download ``target`` from the first working mirror and record it; DownloadError naming every
        mirror's failure when none works."""
        reasons = []
        for url in urls:
            try:
                digest = download(self.session, url, target, self.settings, sha256=sha256, size=size)
            except DownloadError as error:
                reasons.append(error.reason if len(urls) == 1 else f"{url}: {error.reason}")
                last = error
                continue
            self.manifest.add_file(target, digest, url)
            return
        raise DownloadError(last.url, "; ".join(reasons), last.status)

    def hub_file(self, repo_id: str, file: hub.HubFile, local_dir: Path) -> Path | None:
        """``file`` of the hub dataset ``repo_id`` under ``local_dir``; None (failure counted) on error."""
        target = local_dir / file.path
        if self.reuse(target, file.sha256):
            self.summary.reused += 1
            return target
        try:
            path = hub.fetch(repo_id, file, local_dir)
        except DownloadError as error:
            self.summary.fail(file.path, error.reason)
            return None
        digest = sha256_of(path)
        if file.sha256 is not None and digest != file.sha256:
            raise ChecksumMismatch(
                f"{path}: sha256 mismatch: expected {file.sha256} (the hub's), found {digest}; remove the file "
                "and run again"
            )
        self.manifest.add_file(path, digest, f"hf://datasets/{repo_id}/{file.path}")
        self.summary.fetched += 1
        return path

