"""Reading and writing files: the one decoding rule for text (``text_files``) and the one way a failed write
is reported (``storage``)."""
