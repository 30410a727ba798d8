"""HTTP downloads that resume: ``requests`` with urllib3's ``Retry`` (backoff, Retry-After, transient statuses)
for each request, bytes streamed to ``<file>.part``, continued with an HTTP Range request after a broken
connection or a killed run (restarted from zero where the server ignores Range or the file changed), and a
sha256 checked against the catalogue's where it has one."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medzoo.core.atomic_writes import naming, write_atomically
from medzoo.core.errors import DataError
from medzoo.core.file_io.storage import storage_failure

CHUNK = 1 << 20
TRANSIENT_STATUSES = (408, 425, 429, 500, 502, 503, 504)
CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


@dataclass(frozen=True)
class DownloadSettings:
    """Attempts per request and per interrupted body, the backoff factor (seconds, doubling), the timeout to
    connect and between two reads (seconds), and whether to draw progress bars."""

    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0
    progress: bool = True


class DownloadError(Exception):
    """A URL could not be fetched after the retries (the unit fails; the run goes on)."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.status = url, reason, status


class ChecksumMismatch(DataError):
    """A finished download does not have the sha256 the catalogue expects."""


class _Broken(Exception):
    """The body ended early (a retry resumes it)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def make_session(settings: DownloadSettings) -> Any:
    """A ``requests.Session`` whose adapters retry connection failures and transient statuses with backoff."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=settings.retries, backoff_factor=settings.backoff, status_forcelist=TRANSIENT_STATUSES,
                  allowed_methods=frozenset({"GET", "HEAD"}), respect_retry_after_header=True,
                  raise_on_status=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "medzoo-data-prepare"
    return session


def download(session: Any, url: str, target: Path, settings: DownloadSettings, *, sha256: str | None = None,
             size: int | None = None, label: str | None = None) -> str:
    """Fetch ``url`` into ``target`` (through ``target.part``) and return its sha256; DownloadError when the
    server or network fails after the retries, ChecksumMismatch when ``sha256`` is given and differs."""
    import requests
    from urllib3.exceptions import HTTPError, MaxRetryError
    from urllib3.util.retry import Retry

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    body_retry = Retry(total=settings.retries, backoff_factor=settings.backoff)
    while True:
        try:
            _transfer(session, url, part, settings, label or target.name)
            break
        except (_Broken, HTTPError, requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            try:  # urllib3's counting and backoff, for a body cut short (its adapter only retries requests)
                body_retry = body_retry.increment(method="GET", url=url, error=error)
            except MaxRetryError:
                raise DownloadError(url, f"the connection kept breaking ({_short(error)})") from None
            body_retry.sleep()
    found_size = part.stat().st_size
    if size is not None and found_size != size:
        _discard(part)
        raise DownloadError(url, f"got {found_size} bytes, expected {size}")
    found = sha256_of(part)
    if sha256 is not None and found != sha256:
        _discard(part)
        raise ChecksumMismatch(
            f"{target}: sha256 mismatch: expected {sha256}, found {found} (downloaded from {url}; the file was "
            "removed: run again to fetch it anew, or check --source)"
        )
    os.replace(part, target)
    _meta(part).unlink(missing_ok=True)
    return found


def _transfer(session: Any, url: str, part: Path, settings: DownloadSettings, label: str) -> None:
    import requests
    from tqdm.auto import tqdm

    offset, validator = _resume_point(part, url)
    headers = {"Accept-Encoding": "identity"}  # byte offsets of the file itself, for Range
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    try:
        response = session.get(url, headers=headers, stream=True, timeout=(settings.timeout, settings.timeout))
    except requests.exceptions.RequestException as error:  # the adapter has retried already
        raise DownloadError(url, _short(error)) from None
    with response:
        status = response.status_code
        if status == 416 and offset:
            match = UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return  # the part already holds the whole file
            _discard(part)
            raise _Broken("416 for a stale partial file")
        if status >= 400:
            raise DownloadError(url, f"HTTP {status} {response.reason or ''}".strip(), status)
        start = _range_start(response) if status == 206 else None
        if start != offset or not offset:
            offset = 0  # the server ignored Range (or the file changed): start over
            write_atomically(_meta(part), json.dumps({"url": url, "validator": _validator(response)}))
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                  disable=not settings.progress, leave=False) as bar, _Writer(part, append=bool(offset)) as out:
            # read1 hands over what has arrived, so a connection that breaks keeps every byte received
            while chunk := response.raw.read1(CHUNK, decode_content=False):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise _Broken(f"{part.stat().st_size} of {total} bytes")


class _Writer:
    """``part`` opened for writing; a failed write or fsync (disk full...) is an OSError naming the file."""

    def __init__(self, part: Path, append: bool) -> None:
        self.part = part
        try:
            self.handle = part.open("ab" if append else "wb")
        except OSError as error:
            raise naming(error, part) from None

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except OSError as error:
            raise (storage_failure(error, self.part, len(data)) or naming(error, self.part)) from None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
        except OSError as failure:
            raise naming(failure, self.part) from None
        finally:
            self.handle.close()


def _resume_point(part: Path, url: str) -> tuple[int, str | None]:
    """(bytes already in ``part``, the validator to send with If-Range) when ``part`` is a partial download of
    ``url``, else (0, None)."""
    if not part.is_file():
        return 0, None
    try:
        meta = json.loads(_meta(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("url") != url:
        return 0, None
    return part.stat().st_size, meta.get("validator")


def _validator(response: Any) -> str | None:
    """A strong ETag, else Last-Modified: what If-Range compares (weak ETags are not allowed there)."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


def _range_start(response: Any) -> int | None:
    match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _meta(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta(part).unlink(missing_ok=True)


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__
