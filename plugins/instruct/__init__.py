"""Self-instruct data generation and LLM-judged chat scoring with pluggable text backends."""
