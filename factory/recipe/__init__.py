"""`factory run RECIPE`: a recipe's steps planned, run in order, and skipped when their output is up to date.
    config.py  the command's options (RunConfig)
    steps.py   the step registry: name -> config, run function, manifest
    run.py     the recipe read and checked, the plan, the run folder's state, the dry-run lines
This `__init__` imports nothing.
"""
