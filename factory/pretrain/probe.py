"""--probe PARALLEL: watch cross-lingual alignment emerge (or not) during pre-training, with no fine-tuning.

Every `--probe-every` steps (and at the last one) the discriminator, the network people fine-tune, is read out
by `factory eval retrieval`'s own code (factory/evaluate/retrieval.py, its default protocol: the layer fraction,
pooling and centring of RetrievalConfig) on the parallel text, and accuracy@1 in both directions lands in that
step's train.jsonl record, the Accelerate trackers and the progress line. Once per session, before the first
step, the random-init control of `--control random` (factory/evaluate/control.py: the same shape, CONTROL_SEED)
is measured the same way; a fresh run writes it into its first record, so the curve has its floor beside it.

Exactness: a run with the probe trains exactly as one without it.
- The probe never calls the wrapped model. Under DDP / FSDP / DeepSpeed a wrapped module's forward is a
  collective (FSDP all-gathers shards in it, DDP arms its gradient hooks), so either every process runs it or
  none does; here none does. Every process joins `accelerator.get_state_dict` instead (the gather under FSDP /
  ZeRO-3; a plain read under DDP and on one process), and the main process loads those weights into its own
  copy of the discriminator's encoder and measures that, under no_grad and in eval mode (no dropout), while
  the others wait. The training model's train mode is never touched.
- Building that copy and the control draws initial weights, so everything runs inside
  `torch.random.fork_rng` (CPU and every CUDA device): the random streams the dropout masks and the saved RNG
  state (exact resume, checkpoint.py) rely on come out as they went in.
- Its time is left out of the next window's tokens/s and MFU (`Meter.started` is reset after it).
The data is read and checked, and every text tokenised once, when the command starts (`open_probe`, called by
`check_inputs`): a bad PARALLEL is one line, exit 2, before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import statistics
from typing import TYPE_CHECKING, Any

from factory.pretrain.config import PROBE_LOGS, PretrainConfig

if TYPE_CHECKING:
    from factory.pretrain.state import Run

log = logging.getLogger(__name__)
PREFIX, CONTROL_PREFIX = "probe", "probe_control"


class TextCache:
    """The vocabulary's tokenizer with the probe's texts tokenised once: `measure` asks for them every probe."""

    def __init__(self, tokenizer, texts: list[str]):
        self.tokenizer = tokenizer
        self.ids = dict(zip(texts, tokenizer.encode_batch(texts), strict=True))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.ids[t] if t in self.ids else self.tokenizer.encode(t) for t in texts]

    def single(self, ids: list[int], max_length: int) -> list[int]:
        return self.tokenizer.single(ids, max_length)


@dataclasses.dataclass
class Probe:
    """The probe's data, tokenised, and when to run; `encoder` is the main process's copy, built at first use."""

    data: Any  # factory.evaluate.parallel.Parallel
    tokenizer: TextCache
    every: int
    encoder: Any = None

    def due(self, done: int, steps: int) -> bool:
        return done % self.every == 0 or done == steps


def open_probe(config: PretrainConfig, tokenizer) -> Probe | None:
    """--probe read and checked (the same reader and errors as `eval retrieval --data`), its texts tokenised."""
    if not config.probe:
        return None
    from factory.core.errors import FactoryError
    from factory.evaluate.parallel import read_parallel

    try:
        data = read_parallel(config.probe, config.probe_pivot)
    except FactoryError as e:  # the reader's words are `eval retrieval`'s flags; say this command's
        raise FactoryError(str(e).replace("--data", "--probe").replace("--pivot", "--probe-pivot")) from None
    texts = list(dict.fromkeys(t for pairs in data.pairs.values() for t in (*pairs.pivot, *pairs.other)))
    every = config.probe_every or PROBE_LOGS * config.log_every
    log.info("probe: %s, %d languages against %s, every %d steps", data.source, len(data.pairs), data.pivot, every)
    return Probe(data, TextCache(tokenizer, texts), every)


@contextlib.contextmanager
def untouched_rng():
    """Every random stream (CPU and each CUDA device) as it was before the block."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        yield


def measure_record(run: Run, probe: Probe) -> dict[str, float]:
    """The discriminator's retrieval now, as log keys (on the main process; {} on the others). Every process
    must call it: it joins the state gather."""
    acc = run.accelerator
    state = acc.get_state_dict(run.model)  # a collective under FSDP / ZeRO-3: every process takes part
    record: dict[str, float] = {}
    if acc.is_main_process:
        with untouched_rng():
            if probe.encoder is None:
                probe.encoder = _bare_encoder(acc.unwrap_model(run.model).discriminator.config).to(acc.device)
            probe.encoder.load_state_dict(discriminator_state(state, run.config.sharing))
            record = _measure(probe, probe.encoder, PREFIX, acc.device)
    acc.wait_for_everyone()
    return record


def control_record(run: Run, probe: Probe) -> dict[str, float]:
    """The random-init control's retrieval (`--control random`'s weights for this shape), as log keys."""
    acc = run.accelerator
    record: dict[str, float] = {}
    if acc.is_main_process:
        from factory.evaluate.control import control_state_of

        with untouched_rng():
            config = acc.unwrap_model(run.model).discriminator.config
            encoder = _bare_encoder(config)
            encoder.load_state_dict(control_state_of(config))
            record = _measure(probe, encoder.to(acc.device), CONTROL_PREFIX, acc.device)
        log.info("probe: random-init control, retrieval accuracy@1 %.2f%% (average of both directions)",
                 record[CONTROL_PREFIX])  # fmt: skip
    acc.wait_for_everyone()
    return record


def _bare_encoder(config):
    from factory.model import build_model

    return build_model(config, "none").eval()


def discriminator_state(state: dict[str, Any], sharing: str) -> dict[str, Any]:
    """The discriminator's encoder weights from the RTD model's state, with the table it reads folded in: E_G +
    delta (gdes), E_G (es) or its own (nes), as `RTDModel.discriminator_embedding` and the export give it."""
    prefix, table = "discriminator.deberta.", "embeddings.word_embeddings.weight"
    out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    shared = state.get("generator.deberta." + table)
    if sharing == "gdes":
        out[table] = shared.float() + state["embedding_delta"].float()
    elif sharing == "es":
        out[table] = shared
    return out


def _measure(probe: Probe, encoder, prefix: str, device) -> dict[str, float]:
    from factory.evaluate.retrieval import Protocol, measure

    results, average = measure(encoder, probe.tokenizer, probe.data, Protocol(), device)  # type: ignore[arg-type]
    return as_record(prefix, results, average)


def as_record(prefix: str, results: dict[str, Any], average: dict[str, Any]) -> dict[str, float]:
    """`<prefix>_to_pivot`, `<prefix>_from_pivot` (averages over the languages), `<prefix>` (their mean, the
    progress line's figure) and `<prefix>/<lang>` (the language's two directions averaged), in %."""
    from factory.evaluate.retrieval import DIRECTIONS

    out = {f"{prefix}_{d}": average[d]["accuracy"] for d in DIRECTIONS}
    out[prefix] = round(statistics.fmean(out.values()), 2)
    for lang, r in results.items():
        out[f"{prefix}/{lang}"] = round(statistics.fmean(r[d]["accuracy"] for d in DIRECTIONS), 2)
    return out


def figures(probe: Probe | None, last: dict[str, Any], control: dict[str, float]) -> dict[str, Any] | None:
    """What factory.json records: the last probe (the last record's, the last step being always probed) and the
    control, in the shape of factory.pretrain.manifest.ProbeFigures."""
    if probe is None or PREFIX not in last:
        return None

    def part(record: dict[str, Any], prefix: str) -> dict[str, Any]:
        languages = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith(prefix + "/")}
        return {"to_pivot": record[f"{prefix}_to_pivot"], "from_pivot": record[f"{prefix}_from_pivot"],
                "average": record[prefix], "languages": languages}  # fmt: skip

    return {
        "data": probe.data.source,
        "pivot": probe.data.pivot,
        "step": last["step"],
        "every": probe.every,
        "pretrained": part(last, PREFIX),
        "control": part(control, CONTROL_PREFIX) if control else None,
    }
