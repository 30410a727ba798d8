"""Curriculum training: stage data, batching, the training loop, checkpoints and resume."""
