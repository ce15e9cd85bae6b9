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
- read.py: `ShardSet`, what pre-training reads.
"""

from factory.core.errors import ShardError
from factory.shards.pack import BATCH_ROWS, COLUMN, Packer, ShardWriter, shard_name
from factory.shards.read import ShardSet, iter_rows
from factory.shards.run import build_shards

SHARD_GLOB = "shard-*.arrow"

__all__ = ["BATCH_ROWS", "COLUMN", "SHARD_GLOB", "Packer", "ShardError", "ShardSet", "ShardWriter", "build_shards",
           "iter_rows", "shard_name"]  # fmt: skip
