"""The host side of pre-training: counter-based noise, each process's own rows, the prefetching feed, masking
statistics, the sampler's range and the generator's fp32 logits."""

import pytest
import torch
from conftest import micro_config
from synthetic_shards import write_shards

from factory.pretrain.batches import Feed, prepare_step
from factory.pretrain.config import PretrainConfig
from factory.pretrain.counter_rng import hash_block, reference_word, stream_key, uniforms
from factory.pretrain.mixing import BatchOrder
from factory.pretrain.plan import make_plan
from factory.pretrain.rtd import build_rtd_model, make_step_noise, sample_replacements
from factory.shards.read import ShardSet

pytestmark = pytest.mark.usefixtures("one_thread")
PIECES, SEQ_LEN, BATCH = 1000, 32, 16


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return ShardSet(write_shards(tmp_path_factory.mktemp("synthetic"), 40, SEQ_LEN, PIECES))


def plan(processes: int, micro: int = 2):
    config = PretrainConfig(preset="debug", vocab_size=str(PIECES), batch=BATCH, micro_batch=micro, out="unused")
    return make_plan(config, SEQ_LEN, processes)


def test_the_hash_is_splitmix64_bit_for_bit():
    """int64 tensor ops (wrapping products, masked shifts) give the pure-Python unsigned reference's words."""
    key = stream_key(7, 123_456, 1)
    rows = torch.tensor([0, 1, 4095, 2**40 + 3])
    words = hash_block(key, rows, 9)
    for i, row in enumerate(rows.tolist()):
        assert [w & (2**64 - 1) for w in words[i].tolist()] == [reference_word(key, row, j) for j in range(9)]
    u = uniforms(key, torch.arange(256), 256)
    assert u.dtype == torch.float32 and 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert stream_key(0, 1, 0) != stream_key(1, 0, 0) != stream_key(0, 0, 1)


@pytest.mark.parametrize("processes, micro", [(2, 2), (4, 2), (8, 1), (16, 1)])
def test_each_process_prepares_the_rows_one_process_would(shards, processes, micro):
    """Rank r of an N-process split (with accumulation) gets exactly the ids, masks and sampling uniforms of the
    same global batch positions of one process holding the whole batch, and the counts add up."""
    whole = prepare_step(shards, BatchOrder(len(shards), 3), plan(1, BATCH), 5, 0, PIECES, 3)
    assert len(whole.batches) == 1 and whole.batches[0].ids.shape == (BATCH, SEQ_LEN)
    ref = whole.batches[0]
    split = plan(processes, micro)
    masked = tokens = 0
    for rank in range(processes):
        mine = prepare_step(shards, BatchOrder(len(shards), 3), split, 5, rank, PIECES, 3)
        assert len(mine.batches) == split.accumulation
        for m, b in enumerate(mine.batches):
            rows = slice(m * micro * processes + rank * micro, m * micro * processes + (rank + 1) * micro)
            for name in ("ids", "masked", "uniforms"):
                assert torch.equal(getattr(b, name), getattr(ref, name)[rows]), (rank, m, name)
        masked, tokens = masked + mine.masked, tokens + mine.tokens
    assert (masked, tokens) == (whole.masked, whole.tokens) == (int(ref.masked.sum()), int((ref.ids != 0).sum()))


def test_noise_depends_on_seed_step_and_row_only():
    ids = torch.randint(4, PIECES, (6, 64), generator=torch.Generator().manual_seed(0))
    a = make_step_noise(ids, PIECES, 1, 2, torch.tensor([10, 11, 12, 13, 14, 15]))
    b = make_step_noise(ids[2:4], PIECES, 1, 2, 12)  # the same rows alone: the same draws
    assert torch.equal(a.masked[2:4], b.masked) and torch.equal(a.uniforms[2:4], b.uniforms)
    assert not torch.equal(a.masked, make_step_noise(ids, PIECES, 1, 3, 10).masked)  # another step
    assert not torch.equal(a.masked, make_step_noise(ids, PIECES, 2, 2, 10).masked)  # another seed
    assert (a.uniforms[a.masked] > 0).all() and (a.uniforms[~a.masked] == 0).all()


def test_shard_rows_are_read_in_the_order_asked(tmp_path):
    import numpy as np

    folder = write_shards(tmp_path / "s", 9000, 8, PIECES)  # three 4096-row blocks
    shards = ShardSet(folder)
    every = np.concatenate(shards.blocks).astype(np.int64)
    wanted = [8999, 0, 4096, 4095, 17, 8999, 5000]
    assert torch.equal(shards.rows(wanted), torch.from_numpy(every[wanted]))


class Counting:
    """A prepare function that records which steps it was asked for."""

    def __init__(self, shards, plan):
        self.shards, self.plan, self.asked = shards, plan, []

    def __call__(self, step):
        self.asked.append(step)
        return prepare_step(self.shards, BatchOrder(len(self.shards), 0), self.plan, step, 1, PIECES, 0)


def test_feed_prefetches_the_next_step_and_hands_over_the_same_batches(shards):
    """take(s) returns what prepare_step returns, prepares s + 1 in the background (never past the end), and a
    step out of sequence (a resume) is prepared on the spot; `reduce` sums the counts."""
    split = plan(2)
    prepare = Counting(shards, split)
    sums = []
    feed = Feed(prepare, end=4, device="cpu", reduce=lambda t, reduction: sums.append(reduction) or t * 2)
    for step in (0, 1, 3):
        batches, masked, tokens = feed.take(step)
        # the reference is made outside `prepare`: its record is appended to by the feed's thread meanwhile
        direct = prepare_step(shards, BatchOrder(len(shards), 0), split, step, 1, PIECES, 0)
        for a, b in zip(batches, direct.batches, strict=True):
            assert torch.equal(a.ids, b.ids) and torch.equal(a.masked, b.masked) and torch.equal(a.uniforms, b.uniforms)
        assert (masked, tokens) == (2 * direct.masked, 2 * direct.tokens)
    feed.close()
    assert prepare.asked == [0, 1, 2, 3] and sums == ["sum"] * 3  # 2 was prefetched, unwanted; nothing past 3


def test_sampling_never_returns_special_ids_or_mask():
    """Adversarial logits: all the mass on ids 0-3 and on [MASK] and above, uniforms at both ends of [0, 1)."""
    mask_id, vocab, n = 50, 64, 4096
    logits = torch.randn(n, vocab, generator=torch.Generator().manual_seed(0))
    logits[:, :4] = 1e4
    logits[:, mask_id:] = 1e4
    logits[: n // 2, 4:mask_id] = -1e4  # half the rows: the pieces very unlikely, but the only choice
    u = torch.rand(n, generator=torch.Generator().manual_seed(1))
    u[:8] = torch.tensor([0.0, 0.0, 1 - 2**-24, 1 - 2**-24, 0.5, 2**-24, 0.0, 1 - 2**-24])
    sampled = sample_replacements(logits, u, mask_id)
    assert sampled.min() >= 4 and sampled.max() < mask_id
    assert sample_replacements(logits[-2:].bfloat16(), u[:2], mask_id).min() >= 4  # the same from bf16 logits


def test_generator_logits_and_loss_are_fp32_under_bf16_autocast():
    """On CPU too: under autocast a plain product of the head's input and the table would be bf16; the tied output
    projection and the MLM loss are fp32, and the logits are the fp32 product."""
    torch.manual_seed(0)
    model = build_rtd_model(micro_config(), generator_layers=1).eval()  # no dropout: the same x twice
    ids = torch.randint(4, 1000, (2, 16))
    noise = make_step_noise(ids, model.mask_id, 0, 0)
    positions = noise.masked.flatten().nonzero().squeeze(-1)
    gen_input = ids.masked_fill(noise.masked, model.mask_id)
    head, table = model.generator.lm_predictions.lm_head, model.generator_embedding()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model.generator.deberta(gen_input).last_hidden_state.flatten(0, 1)[positions]
        x = head.LayerNorm(head.act(head.dense(hidden)))
        plain = x @ table.t()  # what the head computed before: autocast's bf16 matmul
        logits = model.generator(gen_input, positions=positions).logits
        out = model(ids, noise.masked, noise.uniforms)
    assert plain.dtype == torch.bfloat16
    assert logits.dtype == torch.float32 and out.mlm_loss_sum.dtype == torch.float32
    torch.testing.assert_close(logits, x.float() @ table.t() + head.bias, rtol=0, atol=1e-5)


def test_official_masking_never_reaches_the_tail_and_spread_does():
    """The official left-to-right budget stops at the 77th window: positions 463-510 of a 512-token row are never
    masked there; the default spreads the 77 windows over all 85."""
    ids = torch.randint(4, PIECES, (2000, 512), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1] = 1, 2
    official = make_step_noise(ids, PIECES, 0, 0, masking="official").masked
    spread = make_step_noise(ids, PIECES, 0, 0).masked
    assert not official[:, 463:].any() and official[:, 1:463].float().mean(0).min() > 0.1
    assert spread[:, 463:511].float().mean(0).min() > 0.1
    assert (official.sum(1) == 77).all() and (spread.sum(1) == 77).all()


@pytest.mark.slow
def test_spread_masking_gives_every_position_fifteen_percent():
    """Over 100,000 rows of 512 tokens, every non-special position is masked 15% +- 1 point of the time."""
    rows, chunk, counts = 100_000, 10_000, torch.zeros(512, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    for step in range(rows // chunk):
        ids = torch.randint(4, 128_000, (chunk, 512), generator=g)
        ids[:, 0], ids[:, -1] = 1, 2
        counts += make_step_noise(ids, 128_000, 0, step, torch.arange(chunk)).masked.sum(0)
    freq = counts.double() / rows
    assert freq[0] == 0 and freq[-1] == 0  # [CLS], [SEP]
    assert freq[1:-1].min() > 0.14 and freq[1:-1].max() < 0.16, (freq[1:-1].min(), freq[1:-1].max())
