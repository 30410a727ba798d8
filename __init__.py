"""medzoo: a plugin-based model zoo for biomedical vision-language assistants."""

__version__ = "0.1.0"
