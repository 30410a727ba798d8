"""Built-in connectors: vision features -> language-model embeddings."""
