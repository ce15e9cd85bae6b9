"""The RTD model: official masking, sampling, GDES / ES / NES gradients, export folding, the bench API."""

import pytest
import torch
from conftest import micro_config

from factory.pretrain.rtd import (
    RTDModel,
    build_rtd_model,
    choose_masked,
    export_discriminator,
    make_step_noise,
    max_predictions,
    rtd_loss,
    sample_replacements,
)

MASK_ID = 1000


def batch(length=64, rows=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, MASK_ID, (rows, length), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2
    ids[-1, length // 2 :] = 0  # a padded row
    return ids


def test_masking_follows_the_official_scheme():
    """--masking official: the official left-to-right windows (the same draws as the default, spread, but the
    first 77 windows kept instead of a random 77)."""
    ids = batch(512, rows=8)
    masked = make_step_noise(ids, MASK_ID, 0, 0, masking="official").masked
    assert not masked[ids <= 3].any()  # never [PAD]/[CLS]/[SEP]/[UNK]
    counts = masked.sum(1)
    assert counts.max() <= max_predictions(512) == 80
    assert (counts[:-1] == 77).all()  # round(0.15 * 512) = 77 < 80: 15% of the tokens
    # one per window of 6 candidates: consecutive masks are at most 11 candidates apart and never in one window
    pos = masked[0].nonzero().squeeze(-1) - 1  # candidate rank (row 0 has [CLS] first)
    assert ((pos // 6).diff() == 1).all()
    again = make_step_noise(ids, MASK_ID, 0, 0, masking="official").masked
    assert torch.equal(masked, again)
    assert max_predictions(128) == 20


def test_spread_masking_keeps_a_random_budget_of_windows():
    """The default: still one mask per 6-candidate window and 77 per full row, but the 77 windows are a random
    choice of the row's 85, so the tail of the row is masked too."""
    ids = batch(512, rows=8)
    masked = make_step_noise(ids, MASK_ID, 0, 0).masked
    assert not masked[ids <= 3].any()
    assert (masked.sum(1)[:-1] == 77).all()
    pos = masked[0].nonzero().squeeze(-1) - 1
    windows = pos // 6
    assert (windows.diff() >= 1).all() and windows.max() > 77  # at most one per window, windows past the 77th
    picks = torch.rand(8, 86, generator=torch.Generator().manual_seed(0))
    keys = torch.randint(0, 2**32, (8, 86), generator=torch.Generator().manual_seed(1))
    assert torch.equal(choose_masked(ids, MASK_ID, picks, keys), choose_masked(ids, MASK_ID, picks, keys))


def test_sampling_is_the_softmax_distribution_over_the_pieces():
    logits = torch.tensor([[3.0, 3.0, 3.0, 3.0, 0.0, 1.0, 2.0, -1.0] + [5.0] * 4])  # ids 0-3, pieces 4-7, [MASK]=8..
    n = 20000
    g = torch.Generator().manual_seed(0)
    many = logits.expand(n, -1).clone()
    sampled = sample_replacements(many, torch.rand(n, generator=g), mask_id=8)
    assert torch.equal(many, logits.expand(n, -1))  # the caller's logits are left alone
    freq = torch.bincount(sampled, minlength=12).float() / n
    expected = logits[0, 4:8].softmax(-1)
    assert freq[:4].sum() == 0 and freq[8:].sum() == 0
    torch.testing.assert_close(freq[4:8], expected, atol=0.01, rtol=0)


def test_forward_counts_and_labels():
    torch.manual_seed(0)
    model = build_rtd_model(micro_config(), generator_layers=1)
    ids = batch()
    noise = make_step_noise(ids, MASK_ID, seed=0, step=0, rows=0)
    out = model(ids, noise.masked, noise.uniforms)
    assert out.masked == noise.masked.sum() and out.tokens == (ids != 0).sum()
    assert 0 < out.replaced <= out.masked  # replaced only where masked
    assert torch.isfinite(out.mlm_loss_sum) and torch.isfinite(out.rtd_loss_sum)


def rtd_grads(sharing: str):
    """Gradients of the RTD loss alone."""
    model = build_rtd_model(micro_config(), generator_layers=1, sharing=sharing, seed=0)
    ids = batch()
    noise = make_step_noise(ids, MASK_ID, 0, 0, 0)
    model(ids, noise.masked, noise.uniforms).rtd_loss_sum.backward()
    return model


def test_gdes_rtd_loss_leaves_the_generator_embedding_alone():
    model = rtd_grads("gdes")
    grad = model.generator_embedding().grad
    assert grad is None or grad.abs().max() == 0
    assert model.embedding_delta.grad.abs().max() > 0  # RTD trains delta instead
    assert model.discriminator.deberta.embeddings.word_embeddings.weight is None


def test_es_rtd_loss_trains_the_shared_embedding():
    model = rtd_grads("es")
    assert model.generator_embedding().grad.abs().max() > 0
    assert model.discriminator.deberta.embeddings.word_embeddings.weight is None


def test_nes_keeps_two_matrices():
    model = rtd_grads("nes")
    own = model.discriminator.deberta.embeddings.word_embeddings.weight
    assert own is not None and own.data_ptr() != model.generator_embedding().data_ptr()
    assert own.grad.abs().max() > 0
    g = model.generator_embedding().grad
    assert g is None or g.abs().max() == 0
    names = [n for n, _ in model.named_parameters() if n.endswith("word_embeddings.weight")]
    assert len(names) == 2


def test_mlm_loss_trains_the_generator_embedding_under_gdes():
    model = build_rtd_model(micro_config(), 1, "gdes", seed=0)
    ids = batch()
    noise = make_step_noise(ids, MASK_ID, 0, 0, 0)
    model(ids, noise.masked, noise.uniforms).mlm_loss_sum.backward()
    assert model.generator_embedding().grad.abs().max() > 0
    assert model.embedding_delta.grad is None or model.embedding_delta.grad.abs().max() == 0


def test_export_folds_the_gdes_embedding():
    model = build_rtd_model(micro_config(), 1, "gdes", seed=0)
    with torch.no_grad():
        model.embedding_delta.normal_()
    disc = export_discriminator(model)
    folded = model.generator_embedding() + model.embedding_delta
    torch.testing.assert_close(disc.deberta.embeddings.word_embeddings.weight, folded, rtol=0, atol=0)
    ids = batch()
    model.eval()
    ours = model.discriminator(ids, ids != 0, model.discriminator_embedding()).logits
    torch.testing.assert_close(disc(ids, ids != 0).logits, ours)


def test_bench_api_builds_and_steps():
    """bench/speed/step.py uses these: build_rtd(preset, vocab pieces) and rtd_step(model, optimizer, ids)."""
    from factory.pretrain.optim import build_rtd, make_optimizer, rtd_step

    model = build_rtd("debug", 1000, num_hidden_layers=2)
    assert isinstance(model, RTDModel) and model.generator.config.num_hidden_layers == 1
    optimizer = make_optimizer(model, lr=1e-3)
    before = model.discriminator.mask_predictions.dense.weight.clone()
    mlm, rtd = rtd_step(model, optimizer, batch())
    assert mlm > 0 and rtd > 0
    assert not torch.equal(before, model.discriminator.mask_predictions.dense.weight)


def test_unknown_sharing():
    with pytest.raises(ValueError, match="sharing"):
        RTDModel(micro_config(), 1, "shared")


@pytest.mark.parametrize("sharing, groups", [("gdes", 2), ("nes", 2), ("es", 1)])
def test_clip_groups_split_generator_from_discriminator(sharing, groups):
    """Decoupled as the official training: lambda * RTD gradients must not shrink the generator's clip."""
    model = RTDModel(micro_config(), 1, sharing)
    split = model.clip_groups()
    assert len(split) == groups
    ids = [id(p) for group in split for p in group]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # a partition of every parameter
    if groups == 2:
        assert {id(p) for p in model.generator.parameters()} == {id(p) for p in split[0]}


def test_generator_update_is_independent_of_the_rtd_weight():
    """With the groups clipped apart, the generator's gradient after clipping is the same for lambda 1 and 1000."""
    import torch.nn.utils as nn_utils

    def generator_grads(rtd_lambda: float):
        torch.manual_seed(0)
        model = RTDModel(micro_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), 1, "gdes")
        ids = batch()
        noise = make_step_noise(ids, model.mask_id, 0, 0, 0)
        out = model(ids, noise.masked, noise.uniforms)
        rtd_loss(out.mlm_loss_sum, out.rtd_loss_sum, out.masked, out.tokens, rtd_lambda).backward()
        for group in model.clip_groups():
            nn_utils.clip_grad_norm_(group, 1.0)
        return torch.cat([p.grad.flatten() for p in model.generator.parameters() if p.grad is not None])

    assert torch.allclose(generator_grads(1.0), generator_grads(1000.0), atol=1e-6)
