"""Conversation templates: how each language model was trained to read a conversation."""
