"""Concrete medzoo components, registered through the same hooks third-party plugins use."""
