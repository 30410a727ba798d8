"""Experiment tracking of a run through accelerate's trackers (TensorBoard, Weights & Biases, MLflow); the
training plots every run folder gets are the application's (:mod:`medzoo.app.plots`)."""

from medzoo.core.training.tracking.session import RunTracking

__all__ = ["RunTracking"]
