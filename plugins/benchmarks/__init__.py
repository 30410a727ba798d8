"""Benchmarks: medical VQA (VQA-RAD, SLAKE, PathVQA) and ColonINST (CLS, REG, REC), real and synthetic."""
