"""Maps the repository root onto the ``medzoo`` package (core/ -> medzoo.core, app/ -> medzoo.app, plugins/ -> medzoo.plugins)."""

from setuptools import find_packages, setup

SUBPACKAGE_ROOTS = ["core", "app", "plugins", "testing"]

setup(
    packages=["medzoo"]
    + [
        f"medzoo.{name}"
        for name in find_packages(include=[f"{root}*" for root in SUBPACKAGE_ROOTS])
    ],
)
