"""Instruction backends: the registered text-only chat models (``openai``, ``hf``) that write or judge conversations."""
