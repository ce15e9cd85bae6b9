"""Two factory trees' shard builds side by side: the same build from each, alternating, each beside the limit
measured right before it (bench/speed/shards.py's own `limit` and `build`).

    python -m bench.speed.shards_ab OLD_TREE NEW_TREE [--data /tmp/bench-shards] [--mb 40] [--pairs 8] [--flags ...]

OLD_TREE / NEW_TREE: checkouts of factory (e.g. `git worktree add /tmp/old COMMIT`); each build runs with its
tree first on PYTHONPATH, byte-compiled first as bench.speed.shards does. --data: a bench.speed.shards --out folder that
already holds `text-MB/` and `vocab/` (run bench.speed.shards once). On this VM the speed swings by a third within
minutes, more than most changes: alternating the trees puts both under the same swings, and the median of the
pairs is the figure to compare.
"""

from __future__ import annotations

import compileall
import statistics
from pathlib import Path

import bench.speed.shards as shards
from bench.cli import make_parser


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__spec__, __doc__)
    parser.add_argument("trees", nargs=2, type=Path)
    parser.add_argument("--data", type=Path, default=Path("/tmp/bench-shards"))
    parser.add_argument("--langs", default="en,pt,ru,de")
    parser.add_argument("--mb", type=float, default=40.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--flags", default="", help="Extra `factory shards` flags, e.g. '--langid langdetect'.")
    args = parser.parse_args(argv)
    text, vocab = args.data / f"text-{args.mb:g}", args.data / "vocab"
    if not (text.is_dir() and (vocab / "spm.model").is_file()):
        raise SystemExit(
            f"no {text} or {vocab}: run python -m bench.speed.shards --out {args.data} --mb {args.mb:g} first"
        )
    for tree in args.trees:
        compileall.compile_dir(tree / "factory", quiet=1)
    langs = args.langs.split(",")
    ratios: dict[Path, list[tuple[float, float]]] = {tree: [] for tree in args.trees}
    for pair in range(args.pairs):
        for tree in args.trees:
            shards.ROOT = tree.resolve()  # build() puts ROOT first on the build's PYTHONPATH
            _, seconds, cpu = shards.limit(vocab, text, args.workers)
            run = shards.build(vocab, shards.local_corpus(text, langs), args.data / "shards-ab", args.workers,
                               args.flags.split())  # fmt: skip
            ratios[tree].append((seconds / run["seconds"], cpu / run["cpu"]))
            print(f"pair {pair + 1} {tree}: x limit {ratios[tree][-1][0]:.3f} (CPU {ratios[tree][-1][1]:.3f})",
                  flush=True)  # fmt: skip
    for tree, values in ratios.items():
        wall = sorted(x for x, _ in values)
        print(f"{tree}: x limit median {statistics.median(wall):.3f} (worst {wall[0]:.3f}, best {wall[-1]:.3f}), "
              f"CPU x limit median {statistics.median(c for _, c in values):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
