"""Shards with several languages for the mixing tests: real shard files plus `languages.json`, which says which
contiguous rows are which language and how many tokens each language has in the corpus.

`LanguageShardSet` is a `factory.shards.ShardSet` that also reads that file into `languages` / `corpus_tokens`,
the attributes pre-training reads (factory/pretrain/mixing.py `shard_languages`). `install()` puts it in place of
ShardSet for the process; run as a script (`python tests/language_shards.py pretrain ...`, or under torchrun)
it installs it and runs the factory CLI, so subprocess tests train on the same language shards.
"""

import json
from pathlib import Path

from factory import shards as shards_module

LANGUAGES_FILE = "languages.json"
ShardSet = shards_module.ShardSet


class LanguageShardSet(ShardSet):
    """A ShardSet whose languages come from `languages.json` beside the shard files (when there is one)."""

    def __init__(self, folder: Path):
        super().__init__(folder)
        path = Path(folder) / LANGUAGES_FILE
        if path.is_file():
            table = json.loads(path.read_text())
            self.languages = {lang: range(*bounds) for lang, bounds in table["languages"].items()}
            self.corpus_tokens = dict(table["corpus_tokens"])


def write_languages(folder: Path, shares: dict[str, float], corpus_tokens: dict[str, int]) -> dict[str, range]:
    """Split the rows of the shards in `folder` into contiguous languages by `shares` (of the rows, in order)."""
    n = len(ShardSet(folder))
    languages, start = {}, 0
    for i, (lang, share) in enumerate(shares.items()):
        stop = n if i == len(shares) - 1 else start + max(1, round(share * n))
        languages[lang] = range(start, stop)
        start = stop
    table = {"languages": {k: [r.start, r.stop] for k, r in languages.items()}, "corpus_tokens": corpus_tokens}
    (Path(folder) / LANGUAGES_FILE).write_text(json.dumps(table))
    return languages


def install() -> None:
    shards_module.ShardSet = LanguageShardSet


if __name__ == "__main__":
    install()
    from factory.cli import main

    main()
