"""``medzoo data prepare``: download or convert a named data set into the layout medzoo's readers read.

One concept per module: :mod:`dataset_sources` (what each NAME is), :mod:`sources` (what ``--source`` names),
:mod:`manifest` (finished files and units, for resuming), :mod:`downloads` (HTTP with retries and Range
resume), :mod:`hub` (Hugging Face files), :mod:`fetching` (a catalogue file through the manifest),
:mod:`vqa_convert` / :mod:`vqa_inputs` (VQA-RAD, SLAKE, PathVQA), :mod:`conversations` (LLaVA-Med json checks),
:mod:`image_store` (images placed once, checked to decode), :mod:`pmc_images` (figures out of PubMed Central
packages), :mod:`coloninst` (a local ColonINST copy),
:mod:`summary` (what a run did) and :mod:`run` (the command's work). Nothing heavy is imported at import time.
"""
