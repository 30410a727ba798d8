"""Text backends for instruction generation and judging: OpenAI-compatible HTTP and local transformers."""
