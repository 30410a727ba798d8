"""An example third-party medzoo plugin: the ``conv-vit`` vision encoder and the ``perceiver-resampler``
connector, registered from ``medzoo_example.plugin`` through the ``medzoo`` entry-point group."""
