"""The composed model: building it from a recipe, processing its inputs, saving and loading it."""
