"""Built-in data: the synthetic biomedical data set written in the real dataset formats."""
