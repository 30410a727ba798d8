"""The inference engine shared by evaluation, chat and serving, and its settings and request types."""

from medzoo.core.inference.engine import InferenceEngine
from medzoo.core.inference.processing import processor_for
from medzoo.core.inference.requests import ChatRequest, Completion, RowRequest
from medzoo.core.inference.settings import MIN_TEMPERATURE, InvalidSettings, SamplingSettings

__all__ = [
    "MIN_TEMPERATURE", "ChatRequest", "Completion", "InferenceEngine", "InvalidSettings", "RowRequest",
    "SamplingSettings", "processor_for",
]
