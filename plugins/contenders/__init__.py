"""Contenders: models from outside medzoo that ``medzoo eval --contender NAME SOURCE`` answers benchmarks with."""
