"""Click commands, one module per pipeline step; `factory/cli.py` registers them. Their options are
generated from the step configs in factory/*/config.py."""
