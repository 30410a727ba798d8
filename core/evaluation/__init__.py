"""Evaluation: answering a benchmark with a model, scoring, image ablations."""
