"""Manifests: the `factory.json` each step writes into its output folder, one typed schema per step.

A later step reads an earlier step's manifest (pre-training reads the shards' and the vocabulary's, the model
card reads pre-training's, `factory run` asks whether a step's output is complete). With one dataclass per
step, a reader names the fields it wants and a writer cannot leave one out; a folder written by another
step or by another version of factory is refused in one line that says which command to run again, instead
of failing on a missing key far from the cause.

Every manifest carries `schema` (the version of its step's schema) and `step`, then the common fields
(`created`, `arguments` = the resolved config the step ran with, `versions`), then its step's own.
Version 1 is the untyped manifests that
came before (no `schema` key); version 2 keeps their keys, so a tool that read those still finds them. A
reader accepts exactly its own version: a field that is added or changes meaning bumps `VERSION`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import json
import platform
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from factory.core.errors import ManifestError

MANIFEST = "factory.json"

M = TypeVar("M", bound="Manifest")


def versions() -> dict[str, str]:
    """factory, Python, the platform and the libraries already imported: enough to tell two runs apart."""
    from factory import __version__

    out = {"factory": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for mod in ("torch", "sentencepiece", "datasets", "accelerate"):
        module = sys.modules.get(mod)
        if module is not None:
            out[mod] = getattr(module, "__version__", "?")
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(kw_only=True)
class Manifest:
    """What every step records: which step, when, with which arguments and library versions."""

    STEP: ClassVar[str] = ""  # the `step` value, or its first word ("eval" for "eval xnli")
    COMMAND: ClassVar[str] = ""  # the command that writes it, for error messages
    VERSION: ClassVar[int] = 2

    schema: int = 0  # 0: this class's VERSION
    step: str = ""  # "": this class's STEP
    created: str = field(default_factory=_now)
    arguments: dict[str, Any]  # the step's resolved config (factory.configs, with its own `schema`), as it ran
    versions: dict[str, str] = field(default_factory=versions)

    def __post_init__(self) -> None:
        """Fill in `schema`/`step`, build nested objects from dicts, and check every value against its type:
        a writer that passes a wrong one fails here, in its own tests, not in the step that reads it."""
        cls = type(self)
        self.schema = self.schema or cls.VERSION
        self.step = self.step or cls.STEP
        hints = _hints(cls)
        for f in dataclasses.fields(self):
            try:
                setattr(self, f.name, _conform(getattr(self, f.name), hints[f.name], f.name))
            except _Mismatch as e:
                raise TypeError(f"{cls.__name__}: {e}") from None

    @classmethod
    def owns(cls, step: Any) -> bool:
        """Whether a manifest with this `step` value is this schema's ("eval xnli" is an eval manifest)."""
        return isinstance(step, str) and step.split(" ", 1)[0] == cls.STEP

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- vocab ---------------------------------------------------------------------------------------
@dataclass
class CorpusCounts:
    """Documents read and kept while building the vocabulary's sample (`counts` in the manifest)."""

    read: int
    kept: int
    kept_per_language: dict[str, int]
    chars_per_language: dict[str, int]
    dropped: dict[str, int]
    sample: dict[str, int]  # documents per language in the SentencePiece sample
    sample_lines: int


@dataclass
class VocabShape:
    """The sizes a model needs: SentencePiece pieces, the [MASK] id after them, and the embedding rows."""

    pieces: int
    mask_id: int
    embedding_rows: int


@dataclass(kw_only=True)
class VocabManifest(Manifest):
    """`factory vocab`: a SentencePiece vocabulary with the Hugging Face tokenizer files."""

    STEP: ClassVar[str] = "vocab"
    COMMAND: ClassVar[str] = "factory vocab"

    inputs: dict[str, Any]  # corpus source -> sha256 prefix (a folder: one per file)
    counts: CorpusCounts
    vocab: VocabShape
    languages: list[str]  # the languages it was built for (--langs, or the corpus' lang= prefixes)
    corpus: list[str]  # the --corpus sources, as given
    alpha: float  # language sampling exponent


# ---- where a model came from ---------------------------------------------------------------------
@dataclass
class ModelSource:
    """A model a step read (factory/core/sources.py): the text given and, for a Hub id, the repository and the commit
    its files came from (so the exact files can be fetched again)."""

    given: str
    repo_id: str | None = None  # None: a local folder
    revision: str | None = None  # the commit hash (Hub ids only)


# ---- shards --------------------------------------------------------------------------------------
@dataclass
class ShardFile:
    file: str
    sequences: int
    language: str = "und"  # every row of a file holds one language


@dataclass
class LanguageFigures:
    """One language of a shard set. `tokens`: what the shards store ([CLS]/[SEP] included, padding not);
    `corpus_tokens`: what the language has in the corpus (its documents' ids and [SEP]s after cleaning and
    filtering), counted, or estimated (`corpus_tokens_estimated`) when a budget stopped the build before the
    end: text bytes in the sources x tokens per byte measured on what was read. `rows`: [start, stop) of the
    language's rows in the shard set (languages are contiguous, in sorted order)."""

    documents: int
    tokens: int
    corpus_tokens: int
    corpus_tokens_estimated: bool
    rows: list[int]
    budget: int | None = None  # stored tokens asked for (--tokens split by alpha, or --tokens-per-language)
    source_bytes: int | None = None  # text bytes of the sources feeding the language (None: not known)


@dataclass
class TaskPart:
    """`factory shards --task I/N`: which part of the whole build this folder holds (`--merge` joins them)."""

    index: int  # 1-based
    count: int
    units: list[int]  # [first, stop) of the build's units (files or stream shards) this task read
    build: str  # the whole build's fingerprint: the same in every task of one build


@dataclass(kw_only=True)
class ShardsManifest(Manifest):
    """`factory shards`: packed token sequences, tied to the vocabulary they were tokenised with.

    Version 3: one language per row and per file (`shard-LANG-NNNNN.arrow`), `per_language`, budgets, tasks."""

    STEP: ClassVar[str] = "shards"
    COMMAND: ClassVar[str] = "factory shards"
    VERSION: ClassVar[int] = 3

    vocab_fingerprint: str  # of spm.model: pre-training refuses shards of another vocabulary
    vocab_pieces: int
    mask_token_id: int
    seq_len: int
    documents: int
    sequences: int
    tokens: int
    padding: int
    shards: list[ShardFile]  # in row order: languages sorted, each language's files in order
    corpus: list[str]  # the --corpus sources, as given
    per_language: dict[str, LanguageFigures] = field(default_factory=dict)
    alpha: float | None = None  # the budget split's exponent (None: no total budget)
    counts: dict[str, Any] = field(default_factory=dict)  # documents read and dropped (factory.corpus)
    build: str = ""  # fingerprint of settings + vocabulary + local inputs: a rebuild of the same is skipped
    task: TaskPart | None = None  # a --task part, not a whole shard set
    vocab_source: ModelSource | None = None  # --vocab as given (a published model's Hub id: its commit)


@dataclass
class BaseModel:
    """The Hub model a derived one descends from (the card's `base_model`)."""

    repo_id: str
    revision: str | None = None


@dataclass
class InitFrom:
    """`factory pretrain --init-from`: where the two networks started (factory/pretrain/start.py)."""

    source: ModelSource  # the discriminator
    generator: str  # given / published / folder / derived
    generator_source: ModelSource | None = None  # --init-generator
    generator_rule: str | None = None  # derived: lower-half / fresh
    emd: bool | None = None  # the generator's enhanced mask decoder
    base_model: BaseModel | None = None  # the Hub model it descends from (itself, or the one its folder records)


# ---- pretrain ------------------------------------------------------------------------------------
@dataclass
class Losses:
    """The last logged window of the run (None when nothing was logged, e.g. a finished run resumed)."""

    mlm_loss: float | None = None
    rtd_loss: float | None = None
    rtd_accuracy: float | None = None
    rtd_baseline: float | None = None
    mlm_accuracy: float | None = None


@dataclass
class Hardware:
    device: str
    count: int | None
    kind: str  # "cuda" or "cpu"
    hardware_summary: str  # "2 x NVIDIA H100" / "16 CPU cores (x86_64)", as the card shows it


@dataclass
class ModelShape:
    """The sizes of the model a step built (`factory.model.presets.Shape.sizes()`); `preset` beside it is the preset's
    name only when these are that preset's sizes, else "custom" (and `base_preset` the one it came from)."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    generator_layers: int  # of the RTD pair (half the depth, at least 1); `factory init` writes one network


@dataclass
class ProbeArm:
    """One model's parallel-sentence retrieval accuracy@1 (%) in a --probe (factory/pretrain/probe.py)."""

    to_pivot: float  # averages over the languages
    from_pivot: float
    average: float  # of the two directions
    languages: dict[str, float]  # each language's two directions averaged


@dataclass
class ProbeFigures:
    """`factory pretrain --probe`: the last probe of the discriminator, and the random-init control's."""

    data: str
    pivot: str
    step: int  # the step of the last probe (the run's last step)
    every: int
    pretrained: ProbeArm
    control: ProbeArm | None = None


@dataclass
class SamplingPhase:
    """A phase of pre-training's language mix (factory/pretrain/mixing.py): from `start_step` on, each row of a
    batch is language i with probability p[i] = n_i^alpha / sum_j n_j^alpha over the languages in by then."""

    start_step: int
    alpha: float
    p: dict[str, float]


@dataclass
class Session:
    """One session of a pre-training run: from which step it trained, and the arguments it was given that differ
    from the session before (those a resume may change: more steps, another micro-batch or precision, ...)."""

    from_step: int
    changed: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class PretrainManifest(Manifest):
    """`factory pretrain`: the run folder's manifest, and (with `role`) each exported network's.

    The plan's sizes are required; what a run measures or where it ran may be absent (None), and the
    card then leaves that row out rather than guess it.
    """

    STEP: ClassVar[str] = "pretrain"
    COMMAND: ClassVar[str] = "factory pretrain"

    role: str | None = None  # None: the run folder; "discriminator" / "generator": an exported model folder
    preset: str  # the preset's name, or "custom"
    base_preset: str | None = None  # the preset the shape started from (factory writes it; None: not recorded)
    shape: ModelShape | None = None  # the sizes (factory writes them; None: not recorded)
    vocab_size: int  # SentencePiece pieces
    embedding_rows: int
    seq_len: int
    batch: int  # sequences per optimizer step, all processes
    micro_batch: int
    accumulation: int
    processes: int
    lr: float
    warmup: int | None = None
    sharing: str  # gdes / es / nes
    rtd_lambda: float
    mixed_precision: str | None = None
    steps: int
    tokens: int
    parameters: dict[str, int]
    flops_per_step: float
    final: Losses = field(default_factory=Losses)
    tokens_per_s: float | None = None
    mfu: float | None = None
    wall_time_s: float | None = None
    hardware: Hardware | None = None
    shards: str
    vocab_fingerprint: str
    probe: ProbeFigures | None = None  # --probe only
    language_sampling: list[SamplingPhase] | None = None  # shards with several languages only
    tokens_seen_per_language: dict[str, int] | None = None  # rows x seq_len per language over the run
    sessions: list[Session] | None = None  # one per start or resume (None: not recorded)
    init_from: InitFrom | None = None  # --init-from: the model the run continued (None: from scratch)
    update_order: str | None = None  # joint / official (None: not recorded, joint)


# ---- init ----------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class InitManifest(Manifest):
    """`factory init`: a randomly initialised model folder."""

    STEP: ClassVar[str] = "init"
    COMMAND: ClassVar[str] = "factory init"

    parameters: dict[str, int]
    preset: str | None = None  # the preset's name, or "custom" (factory writes it; None: not recorded)
    base_preset: str | None = None
    shape: ModelShape | None = None


# ---- trim / transplant ---------------------------------------------------------------------------
@dataclass(kw_only=True)
class DerivedManifest(Manifest):
    """A model made from another by changing its vocabulary (`factory trim`, `factory transplant`): what it came
    from, and its size before and after. `base_manifest` is the source folder's own factory.json, kept as it was
    (how the weights were pre-trained), or None."""

    base: ModelSource  # the source: a folder, or a Hub id and the commit its files came from
    base_manifest: dict[str, Any] | None = None
    pieces_before: int
    pieces_after: int
    rows_before: int
    rows_after: int
    parameters_before: dict[str, int]  # the model's (bare encoder): backbone, embedding, total
    parameters_after: dict[str, int]
    seconds: float  # wall time of the command


@dataclass
class TrimLanguage:
    """One language's text under the model's tokenizer before and after trimming (the first documents)."""

    documents: int
    words: int
    unchanged: float  # share of the words cut into the same pieces
    fertility_before: float  # pieces per word
    fertility_after: float


@dataclass(kw_only=True)
class TrimManifest(DerivedManifest):
    """`factory trim`: the pieces the languages use, the rest removed."""

    STEP: ClassVar[str] = "trim"
    COMMAND: ClassVar[str] = "factory trim"

    languages: list[str]
    scripts: list[str]  # the languages' scripts, whose single characters were kept
    always_kept: int  # pieces kept whatever the corpus (specials, bytes, user-defined, characters, ...)
    used: int  # other pieces the corpus used
    per_language: dict[str, TrimLanguage]


@dataclass(kw_only=True)
class TransplantManifest(DerivedManifest):
    """`factory transplant`: the model moved onto another vocabulary."""

    STEP: ClassVar[str] = "transplant"
    COMMAND: ClassVar[str] = "factory transplant"

    vocab: ModelSource  # the new vocabulary: a folder, or a model's tokenizer (a Hub id)
    vocab_manifest: dict[str, Any] | None = None  # its factory.json, as it was
    init: str  # mean (FVT) or random: how the new pieces' rows were made
    shared: int  # pieces of both vocabularies: rows copied
    new: int  # pieces only the new vocabulary has: rows made by `init`
    pieces_per_new: float | None = None  # mean: old pieces averaged per new piece (None: random, or no new piece)
    unknown_in_new: int | None = None  # mean: new pieces whose old segmentation holds [UNK]


# ---- eval ----------------------------------------------------------------------------------------
@dataclass
class EvalInputs:
    model: str  # as given: a folder or a Hub id
    model_fingerprint: str | None = None  # of model.safetensors; None for other weight formats
    source: ModelSource | None = None  # the Hub repository and commit, for a Hub id (factory/core/sources.py)


@dataclass
class EvalFigures:
    average: dict[str, dict[str, Any]]  # split -> {"accuracy": ..., "std": ...}
    languages: list[str]
    splits: list[str]


@dataclass(kw_only=True)
class EvalManifest(Manifest):
    """`factory eval SUITE` (step "eval SUITE"); the full numbers are in results.json beside it."""

    STEP: ClassVar[str] = "eval"
    COMMAND: ClassVar[str] = "factory eval"

    inputs: EvalInputs
    figures: EvalFigures


SCHEMAS: tuple[type[Manifest], ...] = (
    VocabManifest, ShardsManifest, PretrainManifest, InitManifest, TrimManifest, TransplantManifest, EvalManifest
)  # fmt: skip


def schema_for(step: str) -> type[Manifest] | None:
    """The schema a step writes ("eval xnli" -> EvalManifest); None for a step that writes none (publish)."""
    return next((s for s in SCHEMAS if s.owns(step)), None)


# ---- writing and reading -------------------------------------------------------------------------
def write_manifest(folder: Path, manifest: M) -> M:
    """Write `manifest` as `folder/factory.json` (Paths and other objects as strings)."""
    text = json.dumps(manifest.to_json(), indent=2, default=str) + "\n"
    (Path(folder) / MANIFEST).write_text(text)
    return manifest


def read_manifest(folder: Path, kind: type[M] | tuple[type[Manifest], ...]) -> M:
    """The manifest in `folder`, as `kind` (or as whichever of several kinds its step is)."""
    manifest = find_manifest(folder, kind)
    if manifest is None:
        raise ManifestError(f"{folder} has no {MANIFEST}; give the folder that {_commands(kind)} wrote")
    return manifest


def find_manifest(folder: Path, kind: type[M] | tuple[type[Manifest], ...]) -> M | None:
    """Like `read_manifest`, but None when the folder has no factory.json (a manifest is optional there)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path} is not valid JSON ({e}); run {_commands(kinds)} again") from None
    step = data.get("step") if isinstance(data, dict) else None
    cls = next((k for k in kinds if k.owns(step)), None)
    if cls is None:
        what = f"the manifest of `factory {step}`" if isinstance(step, str) else "not a factory manifest"
        raise ManifestError(f"{path} is {what}, not of {_commands(kinds)}; give the folder that it wrote")
    version = data.get("schema", 1)
    if version != cls.VERSION:
        raise ManifestError(
            f"{path} is a version-{version} {cls.STEP} manifest and this factory reads version {cls.VERSION}; "
            f"run `{cls.COMMAND}` again to rewrite it"
        )
    return _from_json(cls, data, path)


def parse_manifest(data: dict[str, Any], kind: type[M]) -> M | None:
    """A manifest kept inside another (a derived model's `base_manifest`) as `kind`, or None when it is another
    step's, another version's, or does not fit the schema: provenance that cannot be read is left out."""
    if not (isinstance(data, dict) and kind.owns(data.get("step")) and data.get("schema", 1) == kind.VERSION):
        return None
    try:
        return _from_json(kind, data, Path(MANIFEST))
    except ManifestError:
        return None


def manifest_fingerprint(folder: Path) -> str | None:
    """sha256 prefix of the manifest's bytes: changes whenever its step ran again (`created` changes too)."""
    path = Path(folder) / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def _commands(kind: type[Manifest] | tuple[type[Manifest], ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(f"`{k.COMMAND}`" for k in kinds)


# ---- checking a JSON tree against the dataclasses -----------------------------------------------
class _Mismatch(Exception):
    """A value that does not fit its field; the reader and the writer word it differently."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_json(cls: type[M], data: dict[str, Any], path: Path) -> M:
    fix = f"; run `{cls.COMMAND}` again"
    try:
        return cls(**_fields(cls, data))
    except _Mismatch as e:
        raise ManifestError(f"{path}: {e}{fix}") from None


def _fields(cls: type, data: Any, where: str = "") -> dict[str, Any]:
    """The keyword arguments of `cls` from a JSON object: every required field there, no unknown one."""
    if not isinstance(data, dict):
        raise _Mismatch(f"{where or cls.__name__} should be an object, found {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    missing = [n for n, f in fields.items() if n not in data and _required(f)]
    if unknown or missing:
        problems = [f"unknown field {where}{n!r}" for n in unknown] + [f"missing field {where}{n!r}" for n in missing]
        raise _Mismatch(", ".join(problems))
    hints = _hints(cls)
    return {name: _conform(value, hints[name], f"{where}{name}") for name, value in data.items()}


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _conform(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the type hint `hint`; a nested dataclass is built from its JSON object."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _conform(value, inner[0], where) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else hint(**_fields(hint, value, f"{where}."))
    if origin is list:
        _expect(isinstance(value, list), value, "a list", where)
        return [_conform(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        _expect(isinstance(value, dict), value, "an object", where)
        return {k: _conform(v, args[1], f"{where}.{k}") for k, v in value.items()} if args else value
    if hint is float:  # JSON has one kind of number: 50 is a fine value for a float field
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), value, "a number", where)
        return float(value)
    if hint is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), value, "an int", where)
    elif isinstance(hint, type):
        _expect(isinstance(value, hint), value, f"a {hint.__name__}", where)
    return value


def _expect(ok: bool, value: Any, what: str, where: str) -> None:
    if not ok:
        raise _Mismatch(f"{where} should be {what}, found {_show(value)}")


def _show(value: Any) -> str:
    return json.dumps(value, default=str)[:60]
