"""Self-instruct data generation (``medzoo instruct``) and the LLM-judged chat benchmark (``medzoo judge``), run
through the registered instruction backends."""
