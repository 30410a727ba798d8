"""Experiment tracking of a run through accelerate's trackers (TensorBoard, Weights & Biases, MLflow) and the
training plots every run folder gets."""

from medzoo.core.training.tracking.session import RunTracking

__all__ = ["RunTracking"]
