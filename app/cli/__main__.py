"""``python -m medzoo.app.cli``: the same as the ``medzoo`` console script."""

from medzoo.app.cli.main import main

main()
