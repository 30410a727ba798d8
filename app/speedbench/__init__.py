"""``medzoo speed``: training-step, batching, inference and GPU measurements, each beside its baseline."""
