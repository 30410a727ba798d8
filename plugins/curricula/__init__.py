"""Curriculum schedules: the paper's two/three-stage curriculum and its ablations."""
