"""The ``medzoo`` command line."""
