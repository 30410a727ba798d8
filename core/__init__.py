"""The small core of medzoo: interfaces, the plugin system, composition, recipes, training and the CLI."""
