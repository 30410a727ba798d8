"""Loading a model directory for chat or serving, on the requested device."""

from __future__ import annotations

from medzoo.core.inference import InferenceEngine


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_engine(model_dir: str, device: str = "auto", dtype: str | None = None,
                template: str | None = None) -> InferenceEngine:
    from medzoo.core.model.multimodal import MultimodalModel

    model = MultimodalModel.from_pretrained(model_dir, dtype=dtype).to(resolve_device(device))
    return InferenceEngine(model, template)
