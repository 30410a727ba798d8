"""Multiple-choice medical VQA benchmarks and the answer parsers of the harnesses that publish their figures."""
