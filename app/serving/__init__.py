"""Chat and OpenAI-compatible serving: row-wise batched generation, a dynamic batcher, the FastAPI app."""
