"""`factory shards`: check the inputs, make the plan (probe, budgets, task span), build or resume, write
factory.json, and move the finished folder into place; or reuse a finished one built from the same inputs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from factory.core.errors import FactoryError, ManifestError, RunFailure, ShardError, WorkerDied
from factory.core.manifest import ModelSource, find_manifest, write_manifest
from factory.core.options import to_json
from factory.core.outputs import check_output, fingerprint_file, output_lock, replace_folder
from factory.corpus import (
    Cleaning,
    CorpusStats,
    Pipeline,
    SeenFilter,
    Source,
    Unit,
    Workers,
    check_apart,
    chunks,
    read_source,
)
from factory.model.tokenizer import SPECIAL_TOKENS, SPM_FILE, Tokenizer
from factory.shards import plan as P
from factory.shards.build import ShardBuild, open_work, saved_plan
from factory.shards.config import ShardsConfig
from factory.shards.manifest import LanguageFigures, ShardFile, ShardsManifest, TaskPart
from factory.shards.merge import manifest_figures

log = logging.getLogger("factory.shards")
DEDUPE_BITS = 1 << 28  # 32 MiB, whatever the corpus size (factory/corpus/cleaning.py)


@dataclass
class ShardsPlan:
    """What one build (or task) reads and how much of each language it keeps."""

    sources: list[Source]
    langs: list[str]  # routing order
    langid: str | None  # the language filter, None: off
    units: list[Unit]
    span: tuple[int, int]  # the units this build reads
    feeds: list[list[str]]  # per source: the languages its documents can go to
    source_sizes: list[int | None]  # per source: text bytes of its units in the span
    budgets: dict[str, int | None]
    estimates: dict[str, P.Estimate] | None  # from the probe (budgets, dry run)


@dataclass
class ShardsInputs:
    """The checked inputs: tokenizer, sources, languages and fingerprints."""

    tok: Tokenizer
    spm: Path
    sources: list[Source]
    langs: list[str]
    langid: str | None  # the language filter, None: off
    task: tuple[int, int] | None
    build: str  # the whole build's fingerprint
    work: str  # this task's (the whole build's when there are no tasks)
    vocab_source: ModelSource | None = None  # --vocab as given: a folder, or a Hub id and its commit


def resolve_vocab(config: ShardsConfig) -> tuple[ShardsConfig, ModelSource]:
    """--vocab is a vocabulary folder or a published model's (a folder or a Hub id, factory/core/sources.py), whose
    spm.model then tokenises the shards for `pretrain --init-from`; the config reads the resolved folder."""
    import dataclasses

    from factory.core.sources import resolve_model

    source = resolve_model(config.vocab, parts=("tokenizer",))
    return dataclasses.replace(config, vocab=source.path), ModelSource(**source.describe())


def check_inputs(config: ShardsConfig) -> ShardsInputs:
    tok = Tokenizer.from_folder(config.vocab)
    spm = Path(config.vocab) / SPM_FILE
    sources = [Source.parse(c) for c in config.corpus]
    check_apart(config.out, sources)
    for source in sources:
        if not source.is_hub and next(read_source(source, config.text_field), None) is None:
            raise FactoryError(f"--corpus {source.spec} holds no text; give files with at least one document")
    langs, langid = P.resolve_languages(config, sources)
    task = P.parse_task(config.task) if config.task else None
    vocab = fingerprint_file(spm)
    whole = P.fingerprint(config, vocab, sources)
    return ShardsInputs(tok, spm, sources, langs, langid, task, whole, P.fingerprint(config, vocab, sources, task))


def pipeline_of(config: ShardsConfig, inputs: ShardsInputs) -> Pipeline:
    cleaning = Cleaning(config.min_chars, config.max_chars, config.dedupe, DEDUPE_BITS) if config.clean else None
    return Pipeline(tuple(inputs.langs), cleaning, inputs.langid, config.langid_threshold,
                    DEDUPE_BITS if config.dedupe else 0, str(inputs.spm), SPECIAL_TOKENS["[SEP]"],
                    tuple(config.langid_skip))  # fmt: skip


def make_plan(config: ShardsConfig, inputs: ShardsInputs, workers: Workers, saved: dict | None) -> ShardsPlan:
    """Units, the task's span, and (with a budget, or for the dry run) the probe and the budgets."""
    from factory.corpus import source_units

    units = [u for i, s in enumerate(inputs.sources) for u in source_units(s, i, config.text_field)]
    span = P.task_span([u.size for u in units], *inputs.task) if inputs.task else (0, len(units))
    feeds = [P.unit_languages(s, inputs.langs, inputs.langid) for s in inputs.sources]
    plan = ShardsPlan(inputs.sources, inputs.langs, inputs.langid, units, span, feeds,
                      _sizes(units, span, inputs.sources), {lang: None for lang in inputs.langs}, None)  # fmt: skip
    if saved is not None:
        plan.budgets = saved["budgets"]
        plan.estimates = {k: P.Estimate(**v) for k, v in saved["estimates"].items()} if saved["estimates"] else None
    elif config.tokens or config.tokens_per_language or config.dry_run:
        plan.estimates = probe(config, plan, units, workers)
        plan.budgets = P.budgets(config, plan.estimates)
    return plan


def _sizes(units: list[Unit], span: tuple[int, int], sources: list[Source]) -> list[int | None]:
    sizes: list[int | None] = [0] * len(sources)
    for unit in units[span[0] : span[1]]:
        old = sizes[unit.source]
        sizes[unit.source] = None if old is None or unit.size is None else old + unit.size
    return sizes


def probe(config: ShardsConfig, plan: ShardsPlan, units: list[Unit], workers: Workers) -> dict[str, P.Estimate]:
    """The first PROBE_BYTES of every source through the whole pipeline: tokens per byte per language."""
    sizes = _sizes(units, (0, len(units)), plan.sources)
    counts = [P.SourceCount(size) for size in sizes]
    seen = SeenFilter(DEDUPE_BITS) if config.dedupe else None

    def jobs() -> Iterator:
        for i, source in enumerate(plan.sources):
            read = 0
            for texts in chunks(read_source(source, config.text_field)):
                if read >= P.PROBE_BYTES:
                    break
                read += sum(len(t) for t in texts)
                yield (i, False), texts, source.lang
            else:
                yield (i, True), [], source.lang  # the source ended inside the probe

    for (i, ended), chunk in workers.map(jobs()):
        if ended:
            counts[i].complete = True
            continue
        chunk.drop_duplicates(seen)
        counts[i].bytes_read += chunk.raw_bytes
        kept = chunk.kept()
        for doc_lang, length in zip(chunk.lang[chunk.routed][kept], chunk.lengths[kept], strict=True):
            counts[i].tokens[plan.langs[doc_lang]] += int(length)
    return P.estimates(counts, plan.feeds, plan.langs)


# ---- the step -----------------------------------------------------------------------------------
def build_shards(config: ShardsConfig) -> dict:
    """Tokenise the corpus, pack per language, write shards + factory.json into `config.out` (resumable)."""
    if config.merge:
        from factory.shards.merge import merge_shards

        return merge_shards(config)
    config, vocab_source = resolve_vocab(config)
    inputs = check_inputs(config)
    inputs.vocab_source = vocab_source
    reused = _finished(config, inputs)
    if reused is not None:
        log.info("%s already holds these shards (same settings, vocabulary and inputs): kept", config.out)
        return reused
    check_output(config.out, config.force)
    with contextlib.nullcontext() if config.dry_run else output_lock(Path(config.out)):  # one build per --out
        return _build(config, inputs)


def _build(config: ShardsConfig, inputs: ShardsInputs) -> dict:
    """The build itself (resumable from its work folder), or with --dry-run its plan."""
    work = P.work_folder(config.out)
    saved = None if config.dry_run else saved_plan(work, inputs.work)
    bars = datasets_bars() if any(s.is_hub for s in inputs.sources) else contextlib.nullcontext()
    with bars, Workers(pipeline_of(config, inputs), config.num_proc) as workers:
        plan = make_plan(config, inputs, workers, saved)
        if config.dry_run:
            return {"plan": P.plan_lines(config, plan.estimates, plan.budgets)}
        estimates = {k: asdict(v) for k, v in plan.estimates.items()} if plan.estimates else None
        open_work(work, saved, {"fingerprint": inputs.work, "budgets": plan.budgets, "estimates": estimates})
        build = ShardBuild(work, plan, inputs.langs, config.seq_len, config.rows_per_shard,
                           DEDUPE_BITS if config.dedupe else 0)  # fmt: skip
        build.restore()
        try:
            build.run(workers, config.text_field)
        except WorkerDied as e:  # the out-of-memory killer, most likely: the rerun resumes
            build.abandon()
            raise RunFailure(f"{e}; what was built up to the last checkpoint is kept: run the same command again "
                             "to resume") from None  # fmt: skip
        except BaseException:
            build.abandon()  # the last checkpoint stands: the next run continues from it
            raise
        build.close()
    figures = write_figures(config, inputs, plan, build, work)
    _move_into_place(work, Path(config.out))
    return figures


def _finished(config: ShardsConfig, inputs: ShardsInputs) -> dict | None:
    """The figures of --out when it already holds this very build (`factory run` re-running a step)."""
    try:
        manifest = find_manifest(config.out, ShardsManifest) if Path(config.out).is_dir() else None
    except ManifestError:
        return None
    if manifest is None or manifest.build != inputs.build or config.dry_run:
        return None
    task = (manifest.task.index, manifest.task.count) if manifest.task else None
    return manifest_figures(manifest) if task == inputs.task else None


def write_figures(config: ShardsConfig, inputs: ShardsInputs, plan: ShardsPlan, build: ShardBuild, work: Path) -> dict:
    """factory.json for the finished build (or task); one line if nothing at all was kept."""
    stats: CorpusStats = build.state.stats
    found = P.estimates(build.state.counts, plan.feeds, plan.langs)
    for lang, probed in (plan.estimates or {}).items():
        if probed.exact and not found[lang].exact:  # the probe read it all: a count beats an estimate
            found[lang] = probed
    per_language, shards, start = {}, [], 0
    for lang in build.order:
        ln = build.languages[lang]
        rows = ln.writer.sequences
        shards += [ShardFile(f["file"], f["sequences"], lang) for f in ln.writer.files]
        e = found[lang]
        per_language[lang] = LanguageFigures(ln.writer.documents, ln.writer.tokens, e.corpus_tokens or 0,
                                             not e.exact, [start, start + rows], ln.budget, e.source_bytes)  # fmt: skip
        start += rows
        _report(lang, per_language[lang], stats)
    if not shards:
        from factory.corpus import nothing_kept

        empty = f"--corpus {' '.join(config.corpus)} holds no text"
        reason = nothing_kept(stats) if stats.read and stats.dropped else empty
        raise ShardError(f"{reason}; nothing to shard")
    task = TaskPart(*inputs.task, list(plan.span), inputs.build) if inputs.task else None
    manifest = ShardsManifest(
        arguments=to_json(config), vocab_fingerprint=fingerprint_file(inputs.spm), vocab_pieces=inputs.tok.num_pieces,
        mask_token_id=inputs.tok.mask_id, seq_len=config.seq_len,
        documents=sum(f.documents for f in per_language.values()), sequences=start,
        tokens=sum(f.tokens for f in per_language.values()),
        padding=sum(build.languages[k].writer.padding for k in build.order), shards=shards, corpus=list(config.corpus),
        per_language=per_language, alpha=config.alpha if config.tokens else None, counts=stats.as_dict(),
        build=inputs.build, task=task, vocab_source=inputs.vocab_source,
    )  # fmt: skip
    write_manifest(work, manifest)
    return manifest_figures(manifest)


def _report(lang: str, figures: LanguageFigures, stats: CorpusStats) -> None:
    """A budget the corpus could not fill, or a language that got nothing: say so (the build goes on)."""
    if figures.documents == 0:
        log.warning("%s: no documents kept (%s read in all); its range is empty", lang, f"{stats.read:,}")
    elif figures.budget is not None and figures.tokens < figures.budget:
        log.warning(
            "%s: stored %s of its %s-token budget: the corpus holds less than estimated (%s corpus tokens counted)",
            lang, f"{figures.tokens:,}", f"{figures.budget:,}", f"{figures.corpus_tokens:,}",
        )  # fmt: skip


def _move_into_place(work: Path, out: Path) -> None:
    (work / "plan.json").unlink(missing_ok=True)
    replace_folder(work, out)


@contextlib.contextmanager
def datasets_bars() -> Iterator[None]:
    """`datasets` draws its own bars (streams): off where factory's are (-q, other processes)."""
    import datasets

    from factory.core.progress import progress_enabled

    was_on = datasets.is_progress_bar_enabled()
    if not progress_enabled():
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()
