"""The built-in plugins: name -> module holding ``@hookimpl`` registration functions.

They are loaded exactly like third-party plugins (one module per plugin, the same hooks).
"""

BUILTIN_PLUGINS: dict[str, str] = {
    "datasets": "medzoo.plugins.datasets.registration",
    "instruct": "medzoo.plugins.instruct.registration",
    "language": "medzoo.plugins.language.registration",
    "templates": "medzoo.plugins.templates.registration",
    "vision": "medzoo.plugins.vision.registration",
    "connectors": "medzoo.plugins.connectors.registration",
    "vqa-datasets": "medzoo.plugins.datasets.vqa_registration",
    "benchmarks": "medzoo.plugins.benchmarks.registration",
    "tuning": "medzoo.plugins.tuning.registration",
    "curricula": "medzoo.plugins.curricula.registration",
}
