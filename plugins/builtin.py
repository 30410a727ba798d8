"""The built-in plugins: name -> module holding ``@hookimpl`` registration functions.

They are loaded exactly like third-party plugins (one module per plugin, the same hooks).
"""

BUILTIN_PLUGINS: dict[str, str] = {
    "tuning": "medzoo.plugins.tuning.registration",
    "curricula": "medzoo.plugins.curricula.registration",
}
