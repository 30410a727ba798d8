"""Built-in dataset readers: real file formats in, conversation records out, bad records counted."""
