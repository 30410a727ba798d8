"""Files of a Hugging Face dataset repository, listed and fetched through ``huggingface_hub`` (its own
resume, caching, retries and authentication); the listing gives each LFS file's sha256, checked after."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medzoo.app.data_prepare.downloads import DownloadError


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int | None = None
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern) for pattern in patterns)


def list_files(repo_id: str) -> list[HubFile]:
    """Every file of the dataset ``repo_id``; DownloadError when the hub cannot be asked (offline, unknown,
    gated)."""
    from huggingface_hub import HfApi

    try:
        entries = list(HfApi().list_repo_tree(repo_id, repo_type="dataset", recursive=True))
    except Exception as error:  # httpx, hub HTTP and offline-mode errors alike fail this source
        raise DownloadError(f"hf://datasets/{repo_id}", f"cannot list the files ({_short(error)})") from None
    files = []
    for entry in entries:
        if getattr(entry, "size", None) is None and not hasattr(entry, "lfs"):
            continue  # a folder
        lfs = getattr(entry, "lfs", None)
        files.append(HubFile(entry.path, getattr(entry, "size", None), getattr(lfs, "sha256", None)))
    return files


def fetch(repo_id: str, file: HubFile, local_dir: Path) -> Path:
    """``file`` downloaded into ``local_dir`` (kept at its path in the repository)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, file.path, repo_type="dataset", local_dir=local_dir))
    except OSError as error:
        if error.errno is not None:  # the disk (full, read-only...), not the network: the CLI reports it
            raise
        raise DownloadError(f"hf://datasets/{repo_id}/{file.path}", _short(error)) from None
    except Exception as error:
        raise DownloadError(f"hf://datasets/{repo_id}/{file.path}", _short(error)) from None


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    hint = "; for a gated data set run `hf auth login`" if "401" in text or "403" in text or "gated" in text.lower() else ""
    return (f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__) + hint
