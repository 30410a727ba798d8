"""Built-in optimizers (adamw, sgd) and learning-rate schedules (cosine, linear, constant)."""
