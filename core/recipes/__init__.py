"""Recipes: YAML files that compose plugins into a trainable variant.

``load_recipe`` (loading.py) reads a recipe and its ``defaults`` chain (yaml_file.py), applies overrides and
passes the merged data through the one validation path (validation.py: structure check against the schema in
schema.py, omegaconf merge, semantic check).
"""
