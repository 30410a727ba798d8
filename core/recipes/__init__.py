"""Recipes: YAML files that compose plugins into a trainable variant, checked against one schema."""
