"""Token shards: a corpus tokenised once, per language, and packed into fixed-length rows for pre-training.

    factory shards --vocab vocab/ --corpus en=data/en --corpus pt=hf:allenai/c4:pt --tokens 2B --out shards/

Every row holds one language: `[CLS] + seq_len-2 tokens + [SEP]`, cut from that language's documents joined
by [SEP]. Rows are uint32 Arrow IPC files per language (`shard-LANG-NNNNN.arrow`, fixed-size lists), which
the trainer memory-maps; languages are stored in sorted order, so each has one contiguous row range
(`ShardSet.languages`). factory.json records the vocabulary fingerprint, seq_len, and per language the
documents, stored tokens, corpus tokens (counted or estimated) and rows. docs/data.md explains the pipeline:

- plan.py: languages, units, tasks (`--task I/N`), the probe's estimates, budgets (`--tokens` split by
  alpha, `--tokens-per-language`), the dry run;
- pack.py: the packer and the writer (fixed-size record batches, `.partial` files, checkpoint/restore);
- build.py: the loop over units through the shared corpus pipeline (factory/corpus/pipeline.py), resumable;
- run.py: the step (inputs, reuse of a finished folder, manifest); merge.py: `--merge` of task folders;
- read.py: `ShardSet`, what pre-training reads;
- config.py: the options and the budgets' grammar; manifest.py: factory.json.
This `__init__` imports nothing: its names load their module on first use, so the step's config loads alone.
"""

SHARD_GLOB = "shard-*.arrow"

_HOMES = {"ShardError": "factory.core.errors", "BATCH_ROWS": "factory.shards.pack", "COLUMN": "factory.shards.pack",
          "Packer": "factory.shards.pack", "ShardWriter": "factory.shards.pack", "shard_name": "factory.shards.pack",
          "ShardSet": "factory.shards.read", "iter_rows": "factory.shards.read", "build_shards": "factory.shards.run"}
__all__ = ["SHARD_GLOB", *_HOMES]


def __getattr__(name: str):
    """The step's names, from their modules on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'factory.shards' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
