"""`factory publish`: a model folder staged with its model card and uploaded to the Hugging Face Hub.
    hub.py           the step: inputs, staging, checks of the staged folder, the upload
    card.py          the model card from the manifests (card_results.py: its evaluation tables;
                     card_derived.py: what a trimmed or transplanted model came from)
    repo_ids.py      the grammar of Hub repository ids
This `__init__` imports nothing, so the step's config loads without the step's code.
"""
