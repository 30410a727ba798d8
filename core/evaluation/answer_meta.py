"""The ``*.meta.json`` sidecar of an answer file: what its answers belong to, so a resume never mixes answers of
another model, benchmark, data file, protocol or image ablation into it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medzoo.core.atomic_writes import write_json_atomically
from medzoo.core.errors import DataError

META_VERSION = 1
#: the answer files ``medzoo eval`` writes into its output folder, besides ``metrics.json``
ANSWER_FILE = "predictions.jsonl"
FRESH_HINT = "rerun with --fresh to discard them, or choose another --output-dir"


def meta_path(answers: str | Path) -> Path:
    """``predictions.noise.jsonl`` -> ``predictions.noise.meta.json``."""
    answers = Path(answers)
    return answers.with_name(f"{answers.name.removesuffix('.jsonl')}.meta.json")


def weights_fingerprint(model: Any) -> str:
    """sha256 over each state-dict entry's name, shape, dtype and its first and last 256 values, in order.

    Cheap (a few KiB per tensor whatever the model's size) and it changes whenever training touched the weights.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        for part in (flat[:256], flat[-256:]):
            digest.update(part.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _option_text(value: Any) -> str:
    """Option values as the CLI's ``--option key=value`` gives them (a recipe's 4 and the CLI's "4" agree)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _resolved(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def answer_meta(
    *,
    model_id: str,
    weights: str,
    benchmark: str,
    options: dict[str, Any],
    data: str | Path | None,
    image_root: str | Path | None,
    protocol: dict[str, Any],
    image_ablation: str | None,
) -> dict[str, Any]:
    """The sidecar of one answer file (keys in the order a mismatch is looked for)."""
    return {
        "medzoo_answers": META_VERSION,
        "model_id": model_id,
        "weights": weights,
        "benchmark": benchmark,
        "benchmark_options": {key: _option_text(options[key]) for key in sorted(options)},
        "data": _resolved(data),
        "image_root": _resolved(image_root),
        "protocol": protocol,
        "image_ablation": image_ablation,
    }


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            flat.update(_flat(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


_ABSENT = object()


def _shown(value: Any) -> str:
    return "absent" if value is _ABSENT else json.dumps(value)


def first_difference(recorded: dict[str, Any], wanted: dict[str, Any]) -> tuple[str, str, str] | None:
    """(dotted key, recorded value, wanted value) of the first key that differs (values as json), or None."""
    old, new = _flat(recorded), _flat(wanted)
    for key in [*new, *(k for k in old if k not in new)]:
        before, after = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if before != after:
            return key, _shown(before), _shown(after)
    return None


def refuse_mismatched_resume(answers: str | Path, wanted: dict[str, Any]) -> None:
    """DataError when ``answers`` holds answers that ``wanted`` (this run's sidecar) does not describe: a sidecar
    that differs, is unreadable, or is missing (answers of an older medzoo)."""
    answers = Path(answers)
    if not answers.is_file() or answers.stat().st_size == 0:
        return
    sidecar = meta_path(answers)
    if not sidecar.is_file():
        raise DataError(
            f"{answers}: answers with no {sidecar.name} (an older run), so medzoo cannot tell which model, benchmark "
            f"and protocol they belong to; {FRESH_HINT}"
        )
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{sidecar}: not a readable answer sidecar ({type(error).__name__}); {FRESH_HINT}") from None
    if not isinstance(recorded, dict):
        raise DataError(f"{sidecar}: expected a json object describing {answers.name}; {FRESH_HINT}")
    difference = first_difference(recorded, json.loads(json.dumps(wanted)))
    if difference is not None:
        key, old, new = difference
        raise DataError(
            f"{answers}: its answers belong to another evaluation ({sidecar.name}: {key} is {old}, this run has {new})"
            f"; {FRESH_HINT}"
        )


def write_meta(answers: str | Path, meta: dict[str, Any]) -> Path:
    """Write the sidecar atomically (left as it is when it already says the same)."""
    sidecar = meta_path(answers)
    text = json.dumps(meta, indent=2) + "\n"
    if sidecar.is_file() and sidecar.read_text(encoding="utf-8", errors="replace") == text:
        return sidecar
    return write_json_atomically(sidecar, meta, indent=2)
