"""``python -m medzoo.core.cli``: the same as the ``medzoo`` console script."""

from medzoo.core.cli.main import main

main()
