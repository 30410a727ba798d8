"""The small core of medzoo: the component interfaces, the plugin system, model composition and saving, recipes,
training, inference and evaluation. It imports no plugin and no application module; the CLI and the other
applications live in :mod:`medzoo.app`."""
