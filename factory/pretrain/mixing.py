"""Which language each row of a global batch comes from: α-sampled (and scheduled) mixing at training time.

Language i is drawn with p_i ∝ n_i^α, n_i being the tokens the language has in the corpus (not what the
shards store: a budget truncates storage, not the mix), as XLM-R does with α = 0.3. `--alpha-schedule` changes
α by phase of the run and `--language-schedule` lets languages enter at a phase, as mmBERT does (α 0.7 ->
0.5 -> 0.3, languages added in stages). docs/pretraining.md#language-sampling says why and where from.

Exactness. The rows of step s depend on (seed, s) only, so N processes read what one process reads and a
resumed run repeats a straight one:
- `Mix.counts(s)`, the rows each language has given in steps [0, s), is a closed form: inside a phase it is the
  Webster (Sainte-Laguë) apportionment of (s - phase start) x batch rows by the phase's weights, added to what
  the earlier phases gave. A divisor method never takes a row back as the house grows, so every step's quota
  (counts(s + 1) - counts(s)) is >= 0, the running mix is within about a row of the target per language, and a
  language with p_i x batch < 1 still comes, every few steps, instead of being rounded away. The weights are
  integers and the apportionment uses integer arithmetic only, so every machine computes the same quotas.
- Language i reads its rows in a permutation seeded by (seed, i, epoch) (`BatchOrder` over its own range);
  a language drawn more often than it has rows starts a new epoch, i.e. repeats them, as XLM-R does.
- The step's rows are shuffled by (seed, s), so each process's slice holds every language.
One language (shards of one language, "und" where the sources declared none) reads exactly today's `BatchOrder`.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ConfigError
from factory.pretrain.config import MIX_ALPHA, parse_alpha_schedule, parse_language_schedule

if TYPE_CHECKING:
    import torch

    from factory.pretrain.config import PretrainConfig

DUE_BITS = 64  # due times in units of 2^-64: distinct for every row of a language (weights < 2^64)
WEIGHT_SCALE = 2**32  # p_i as an integer weight: the quotas use integer arithmetic only (the same on every machine)
FLAGS = "--alpha/--alpha-schedule/--language-schedule"
log = logging.getLogger(__name__)


class BatchOrder:
    """Which shard rows make up global step s: epoch e reads a permutation seeded by (seed, e)."""

    def __init__(self, n_rows: int, seed: int):
        self.n_rows, self.seed = n_rows, seed
        self._epoch, self._perm = -1, None

    def rows(self, start: int, count: int) -> torch.Tensor:
        """Row indices of global sequences [start, start + count) of the (infinite) stream."""
        import torch

        parts, g, end = [], start, start + count
        while g < end:
            epoch, offset = divmod(g, self.n_rows)
            if epoch != self._epoch:  # one int32/int64 tensor per epoch, not a Python list
                gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
                dtype = torch.int32 if self.n_rows < 2**31 else torch.int64
                self._epoch, self._perm = epoch, torch.randperm(self.n_rows, generator=gen, dtype=dtype)
            take = min(end - g, self.n_rows - offset)
            parts.append(self._perm[offset : offset + take])
            g += take
        return torch.cat(parts)


# ---- the shards' languages -----------------------------------------------------------------------
def shard_languages(shards) -> tuple[dict[str, range], dict[str, int]]:
    """The shards' languages (contiguous row ranges) and each one's tokens in the corpus, as `ShardSet` reads
    them from factory.json's per_language (shards without it are refused when they are opened)."""
    return dict(shards.languages), {lang: int(shards.corpus_tokens[lang]) for lang in shards.languages}


# ---- the mix: phases, weights, quotas ------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    """From `start` (a step) on: α, and each active language's integer weight (p_i = weight / total)."""

    start: int
    alpha: float
    weights: dict[str, int]

    def p(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {lang: w / total for lang, w in self.weights.items()}


@dataclass(frozen=True)
class Mix:
    """The resolved language mix of a run: what each language stores, and the phases (none: one language)."""

    languages: dict[str, range]
    corpus_tokens: dict[str, int]
    batch: int
    phases: tuple[Phase, ...] = ()

    @property
    def single(self) -> bool:
        return not self.phases

    def counts(self, step: int) -> dict[str, int]:
        """Rows each language has given in steps [0, step): a closed form, no replay."""
        if self.single:
            return {lang: step * self.batch for lang in self.languages}
        out = dict.fromkeys(self.languages, 0)
        for phase, end in zip(self.phases, [p.start for p in self.phases[1:]] + [None], strict=True):
            if step <= phase.start:
                break
            steps = step - phase.start if end is None else min(step, end) - phase.start
            given = apportion(tuple(phase.weights.values()), steps * self.batch)
            for lang, n in zip(phase.weights, given, strict=True):
                out[lang] += n
        return out

    def order(self, seed: int):
        """The row order the loop reads: today's `BatchOrder` for one language, else `LanguageOrder`."""
        return BatchOrder(len(next(iter(self.languages.values()))), seed) if self.single else LanguageOrder(self, seed)

    def state(self) -> dict[str, Any] | None:
        """What a checkpoint records and a resume must match (None: one language, today's order)."""
        if self.single:
            return None
        return {
            "describe": self.describe(),
            "languages": {lang: [r.start, r.stop] for lang, r in self.languages.items()},
            "phases": [{"start": p.start, "alpha": p.alpha, "weights": dict(p.weights)} for p in self.phases],
        }

    def describe(self) -> str:
        """ "α 0.3", or "α 0.7 from step 0, 0.5 from step 600; sw from step 600": for messages and the card."""
        if self.single:
            return "one language"
        alphas, entered, seen = [], [], set()
        for p in self.phases:
            if not alphas or alphas[-1][1] != p.alpha:
                alphas.append((p.start, p.alpha))
            new = [lang for lang in p.weights if lang not in seen]
            if p.start > 0 and new:
                entered.append(f"{','.join(new)} from step {p.start:,}")
            seen.update(new)
        text = f"α {alphas[0][1]:g}" if len(alphas) == 1 else "α " + ", ".join(
            f"{a:g} from step {s:,}" for s, a in alphas)  # fmt: skip
        return text + ("; " + "; ".join(entered) if entered else "")


@functools.lru_cache(maxsize=64)  # a finished phase's totals are asked for at every later step
def apportion(weights: tuple[int, ...], seats: int) -> tuple[int, ...]:
    """Webster (Sainte-Laguë) apportionment of `seats` rows by integer `weights`, in integer arithmetic.

    Language i's k-th row is due at (k + 1/2) / w_i, scaled by 2^64 and floored (`_due`); rows are taken in
    (due, language) order, a total order on every language's rows, and the apportionment is its first `seats`.
    Counting every row due by seats / total gives about w_i seats / total + 1/2 rows each, within
    len(weights) / 2 of `seats`; the rest are added (or taken back) one at a time in that order. Being a prefix
    of one order, more seats never give a language fewer rows (house-monotone).
    """
    total = sum(weights)
    cut = (seats << DUE_BITS) // total  # rows with _due(w, k) <= cut: (2k + 1) 2^64 < 2 w (cut + 1)
    counts = [(((2 * w * (cut + 1) - 1) >> DUE_BITS) + 1) // 2 for w in weights]
    missing = seats - sum(counts)
    if missing > 0:  # the next rows due, earliest first
        heap = [(_due(w, c), i) for i, (w, c) in enumerate(zip(weights, counts, strict=True)) if w]
        heapq.heapify(heap)
        for _ in range(missing):
            _, i = heapq.heappop(heap)
            counts[i] += 1
            heapq.heappush(heap, (_due(weights[i], counts[i]), i))
    elif missing < 0:  # the last rows counted, latest first
        heap = [(-_due(w, c - 1), -i) for i, (w, c) in enumerate(zip(weights, counts, strict=True)) if c]
        heapq.heapify(heap)
        for _ in range(-missing):
            _, i = heapq.heappop(heap)
            counts[-i] -= 1
            if counts[-i]:
                heapq.heappush(heap, (-_due(weights[-i], counts[-i] - 1), i))
    return tuple(counts)


def _due(weight: int, k: int) -> int:
    """When row k of a language of this weight is due: floor((k + 1/2) / weight x 2^64)."""
    return ((2 * k + 1) << DUE_BITS) // (2 * weight)


def weights(corpus_tokens: dict[str, int], alpha: float) -> dict[str, int]:
    """p_i ∝ n_i^α as integers (scale 2^32, at least 1 for a language with text): the quotas' input."""
    raw = {lang: float(n) ** alpha if n > 0 else 0.0 for lang, n in corpus_tokens.items()}
    total = sum(raw.values())
    return {lang: (max(1, round(r / total * WEIGHT_SCALE)) if r > 0 else 0) for lang, r in raw.items()}


def build_mix(config: PretrainConfig, shards, batch: int, steps: int) -> Mix:
    """The run's mix from the flags and the shards; a language the shards lack, or a phase with no language to
    draw from, is a ConfigError (before anything is written)."""
    languages, corpus = shard_languages(shards)
    entries = parse_language_schedule(config.language_schedule)
    unknown = [lang for lang in entries if lang not in languages]
    if unknown:
        raise ConfigError(
            f"--language-schedule names {', '.join(unknown)}, which the shards {config.shards} do not hold "
            f"(they hold {', '.join(languages)})"
        )
    empty = [lang for lang, rows in languages.items() if not len(rows)]
    if empty:
        log.warning("the shards hold no rows of %s: left out of the mix", ", ".join(empty))
        languages = {lang: rows for lang, rows in languages.items() if len(rows)}
    if len(languages) == 1:
        if config.alpha is not None or config.alpha_schedule or config.language_schedule:
            log.warning("the shards hold one language (%s): %s have no effect", next(iter(languages)), FLAGS)
        return Mix(languages, {lang: corpus[lang] for lang in languages}, batch)
    alphas = (parse_alpha_schedule(config.alpha_schedule) if config.alpha_schedule
              else [(0.0, config.alpha or MIX_ALPHA)])  # fmt: skip
    at = {lang: round(entries.get(lang, 0.0) * steps) for lang in languages}
    starts = sorted({0} | {round(f * steps) for f, _ in alphas} | set(at.values()))
    phases = []
    for start in (s for s in starts if s == 0 or s < steps):  # a phase from the last step on never runs
        alpha = [a for f, a in alphas if round(f * steps) <= start][-1]
        phase = Phase(start, alpha, weights({lang: corpus[lang] for lang in languages if at[lang] <= start}, alpha))
        if not any(phase.weights.values()):
            raise ConfigError(
                f"no language to draw from at step {start:,}: --language-schedule lets every language of the shards "
                "in later (at least one must start at 0)"
            )
        phases.append(phase)
    return Mix(languages, {lang: corpus[lang] for lang in languages}, batch, tuple(phases))


def stream_seed(*parts: object) -> int:
    """A 40-bit seed from (seed, language, ...): streams that never share a permutation, and that fit the
    `BatchOrder` formula (seed x 7919 + epoch) inside torch's 64-bit seeds."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=5).digest(), "big")


class LanguageOrder:
    """`BatchOrder`'s interface over a mixed stream: `rows(start, count)` -> shard rows of global sequences
    [start, start + count); step s is sequences [s x batch, (s + 1) x batch)."""

    def __init__(self, mix: Mix, seed: int):
        self.mix, self.seed = mix, seed
        self.streams = {lang: BatchOrder(len(rows), stream_seed(seed, "language", lang)) for lang, rows in
                        mix.languages.items()}  # fmt: skip
        self._counts: dict[int, dict[str, int]] = {}
        self._step, self._rows = -1, None

    def rows(self, start: int, count: int) -> torch.Tensor:
        import torch

        parts, g, end, batch = [], start, start + count, self.mix.batch
        while g < end:
            step, offset = divmod(g, batch)
            take = min(end - g, batch - offset)
            parts.append(self.step_rows(step)[offset : offset + take])
            g += take
        return torch.cat(parts)

    def step_rows(self, step: int) -> torch.Tensor:
        """The global batch of `step`: each language's quota from its own stream, shuffled by (seed, step)."""
        import torch

        if step != self._step:
            lo, hi = self.counts(step), self.counts(step + 1)
            parts = [
                self.streams[lang].rows(lo[lang], hi[lang] - lo[lang]).long() + rows.start
                for lang, rows in self.mix.languages.items()
                if hi[lang] > lo[lang]
            ]
            ids = torch.cat(parts)
            gen = torch.Generator().manual_seed(stream_seed(self.seed, "batch", step))
            self._step, self._rows = step, ids[torch.randperm(len(ids), generator=gen)]
        return self._rows

    def counts(self, step: int) -> dict[str, int]:
        """`Mix.counts`, remembered for the last steps (step s + 1's start is step s's end)."""
        if step not in self._counts:
            if len(self._counts) > 4:
                self._counts.pop(min(self._counts))
            self._counts[step] = self.mix.counts(step)
        return self._counts[step]


# ---- what the run logs, records and plans --------------------------------------------------------
def tokens_seen(mix: Mix, step: int, seq_len: int) -> dict[str, int]:
    """Tokens (rows x seq_len, as the `tokens` figure counts them) each language has given by `step`."""
    return {lang: rows * seq_len for lang, rows in mix.counts(step).items()}


def token_fields(mix: Mix, step: int, seq_len: int) -> dict[str, int]:
    """train.jsonl and the trackers: flat `tokens_<lang>` scalars."""
    return {f"tokens_{lang}": n for lang, n in tokens_seen(mix, step, seq_len).items()}


def sampling_phases(mix: Mix) -> list[dict[str, Any]] | None:
    """The run manifest's `language_sampling`: each phase's start, α and p (None: one language)."""
    if mix.single:
        return None
    return [{"start_step": p.start, "alpha": p.alpha, "p": p.p()} for p in mix.phases]


def mix_lines(mix: Mix, steps: int, seq_len: int) -> list[str]:
    """--dry-run: per language its corpus and stored tokens, p in each phase, and the epochs of its stored rows
    the run will read (above 1: it repeats them)."""
    drawn = mix.counts(steps)
    if mix.single:
        lang = next(iter(mix.languages))
        return [f"language mix: one language ({lang}), {drawn[lang] / len(mix.languages[lang]):.2f} epochs of its rows"]
    heads = [f"from step {p.start:,} α {p.alpha:g}" for p in mix.phases]
    header = f"  {'lang':<8} {'corpus':>14} {'stored':>14} " + " ".join(f"{h:>22}" for h in heads) + "   epochs"
    lines = [f"language mix ({mix.describe()}); p_i ∝ corpus_tokens_i^α, tokens:", header]
    for lang, rows in mix.languages.items():
        shares = " ".join(f"{100 * p.p()[lang]:>21.2f}%" if lang in p.weights else f"{'-':>22}" for p in mix.phases)
        lines.append(f"  {lang:<8} {mix.corpus_tokens[lang]:>14,} {len(rows) * seq_len:>14,} {shares}"
                     f"   {drawn[lang] / len(rows):.2f}")  # fmt: skip
    return lines


def dry_run_mix(config: PretrainConfig, batch: int, steps: int, seq_len: int) -> list[str]:
    """--dry-run's language mix, read from --shards (without them there is nothing to mix yet)."""
    if not (config.shards and Path(config.shards).is_dir()):
        given = config.alpha is not None or config.alpha_schedule or config.language_schedule
        return ["language mix: decided by the shards' languages; give --shards to see it"] if given else []
    from factory.shards.read import ShardSet

    return mix_lines(build_mix(config, ShardSet(config.shards), batch, steps), steps, seq_len)
