"""Click commands, one module per pipeline step; `factory/cli.py` registers them."""
