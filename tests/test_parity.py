"""Our forward pass against `transformers`' DebertaV2, on random weights, in both directions."""

import re

import pytest
import torch
import transformers

from factory.core.errors import ConfigError
from factory.model import build_model, load_model, save_model
from tests.conftest import micro_config, padded_batch

LENGTHS = [1, 7, 129, 600]  # 600 > position_buckets (256) and > max_relative_positions (512)
TOL = 1e-4


def _compare(ours, theirs, ids, mask):
    ours.eval()
    with torch.no_grad():
        a = ours(ids, attention_mask=mask)
        b = theirs(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = (a.last_hidden_state - b.hidden_states[-1]).abs().max().item()
    logits = (a.logits - b.logits).abs().max().item() if a.logits is not None else 0.0
    return hidden, logits


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["xsmall", "small", "base", "large", "xlarge", "xxlarge"])
def test_ours_to_transformers(preset, tmp_path):
    config = micro_config(preset)
    ours = build_model(config, "mlm", seed=1)
    save_model(ours, tmp_path)
    theirs, info = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    theirs.eval()
    for length in LENGTHS:
        ids, mask = padded_batch(config.vocab_size, length)
        hidden, logits = _compare(ours, theirs, ids, mask)
        assert hidden <= TOL and logits <= TOL, (preset, length, hidden, logits)


@pytest.mark.slow
def test_full_xsmall_to_transformers(tmp_path):
    config = micro_config("xsmall", layers=12)
    ours = build_model(config, "mlm", seed=2)
    save_model(ours, tmp_path)
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    for length in (7, 600):
        ids, mask = padded_batch(config.vocab_size, length, seed=length)
        hidden, logits = _compare(ours, theirs, ids, mask)
        assert hidden <= TOL and logits <= TOL, (length, hidden, logits)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["xsmall", "base", "xlarge"])
def test_transformers_to_ours(preset, tmp_path):
    """A `save_pretrained` folder (HF's default legacy MLM head) loads into our model."""
    hf_config = transformers.DebertaV2Config(**micro_config(preset).to_hf())
    hf_config.legacy = True
    torch.manual_seed(3)
    theirs = transformers.DebertaV2ForMaskedLM(hf_config).eval()
    with torch.no_grad():  # make the head's LayerNorm and bias non-trivial, so a mix-up would show
        theirs.cls.predictions.transform.LayerNorm.weight.normal_(1.0, 0.1)
        theirs.cls.predictions.bias.normal_(0.0, 0.1)
    theirs.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    for length in LENGTHS:
        ids, mask = padded_batch(hf_config.vocab_size, length, seed=length)
        hidden, logits = _compare(ours, theirs, ids, mask)
        assert hidden <= TOL and logits <= TOL, (preset, length, hidden, logits)


def test_sequence_classification_both_ways(tmp_path):
    config = micro_config("xsmall", labels=("entailment", "neutral", "contradiction"))
    ours = build_model(config, "cls", seed=4)
    save_model(ours, tmp_path / "ours")
    theirs, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "ours", output_loading_info=True
    )
    assert not any(info.values()), info
    assert theirs.config.id2label[2] == "contradiction"
    ids, mask = padded_batch(config.vocab_size, 33)
    hidden, logits = _compare(ours, theirs.eval(), ids, mask)
    assert hidden <= TOL and logits <= TOL
    theirs.save_pretrained(tmp_path / "theirs")
    back = load_model(tmp_path / "theirs")
    hidden, logits = _compare(back, theirs, ids, mask)
    assert hidden <= TOL and logits <= TOL


@pytest.mark.parametrize("variant", [{"share_att_key": False}, {"pos_att_type": ("c2p",)}, {"pos_att_type": ("p2c",)}])
def test_attention_variants(variant, tmp_path):
    """v2 checkpoints in the wild: separate position projections, or a single relative term."""
    config = micro_config("debug", **variant)
    ours = build_model(config, "none", seed=5)
    save_model(ours, tmp_path)
    theirs, info = transformers.AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    ids, mask = padded_batch(config.vocab_size, 300)
    with torch.no_grad():
        diff = (
            (ours.eval()(ids, mask).last_hidden_state - theirs.eval()(input_ids=ids, attention_mask=mask)[0])
            .abs()
            .max()
        )
    assert diff <= TOL


def test_training_mode_gradients_match(tmp_path):
    """Backward too: same loss and same gradients as HF with dropout off."""
    config = micro_config("debug", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = build_model(config, "mlm", seed=6).train()
    save_model(ours, tmp_path)
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).train()
    _assert_same_mlm_gradients(ours, theirs, *padded_batch(config.vocab_size, 130))


def _assert_same_mlm_gradients(ours, theirs, ids, mask) -> None:
    """One MLM loss through both models: equal losses and equal gradients for every shared parameter."""
    labels = torch.where(mask.bool(), ids, -100)
    loss_ours = torch.nn.functional.cross_entropy(ours(ids, mask).logits.flatten(0, 1), labels.flatten())
    loss_theirs = theirs(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss_ours.backward()
    loss_theirs.backward()
    assert abs(loss_ours.item() - loss_theirs.item()) < 1e-5
    ours_params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        if name in ours_params and p.grad is not None:
            assert torch.allclose(ours_params[name].grad, p.grad, atol=1e-5), (ids.shape, name)
    ours.zero_grad()
    theirs.zero_grad()


@pytest.mark.slow
@pytest.mark.parametrize("variant", [{}, {"pos_att_type": ("c2p",)}])
def test_flex_attention_path_forward(variant, tmp_path, monkeypatch):
    """The GPU path (FlexAttention gathers c2p/p2c per tile, no [B, nh, L, L] tensor), run here in its CPU
    reference mode: same hidden states as transformers, with padding and beyond the position buckets."""
    config = micro_config("xsmall", **variant)
    ours = build_model(config, "mlm", seed=7)
    save_model(ours, tmp_path)
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    monkeypatch.setenv("FACTORY_ATTENTION", "flex")
    for length in (7, 129, 300):
        ids, mask = padded_batch(config.vocab_size, length, seed=length)
        hidden, logits = _compare(ours, theirs, ids, mask)
        assert hidden <= TOL and logits <= TOL, (length, hidden, logits)


def test_attention_backend_choice(monkeypatch):
    from factory.model.attention import use_flex

    q = torch.zeros(1, 1, 4, 8)
    monkeypatch.setenv("FACTORY_ATTENTION", "flex")
    assert use_flex(q, dropout=0.0) and not use_flex(q, dropout=0.1)  # flex has no attention dropout
    monkeypatch.setenv("FACTORY_ATTENTION", "auto")
    assert not use_flex(q, dropout=0.0)  # CPU: the SDPA path
    monkeypatch.setenv("FACTORY_ATTENTION", "sdpa")
    assert not use_flex(q, dropout=0.0)
    monkeypatch.setenv("FACTORY_ATTENTION", "fast")
    with pytest.raises(ConfigError, match="FACTORY_ATTENTION"):  # one line from the CLI, no traceback
        use_flex(q, dropout=0.0)


@pytest.mark.slow
def test_flex_attention_path_gradients(tmp_path, monkeypatch):
    """The flex path's backward (gradients flow into q, k, v and through the gathered c2p/p2c buffers)
    equals HF's, padding and lengths beyond the buckets included. torch refuses CPU backward only at a
    device check; behind it is the eager flex implementation that PyTorch tests its GPU kernels against,
    built from the same score_mod joint graph, so the maths of the GPU path is checked here."""
    import torch.nn.attention.flex_attention as flex

    monkeypatch.setattr(flex, "_validate_device", lambda *args: None)
    monkeypatch.setenv("FACTORY_ATTENTION", "flex")
    config = micro_config("xsmall", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = build_model(config, "mlm", seed=8).train()
    save_model(ours, tmp_path)
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).train()
    for length in (129, 300):
        _assert_same_mlm_gradients(ours, theirs, *padded_batch(config.vocab_size, length, seed=length))


def test_auto_falls_back_to_sdpa_when_flex_cannot_run(monkeypatch, caplog):
    """`auto` picked flex (as on a CUDA box) but the kernel fails: one warning, then SDPA, same numbers;
    an explicit FACTORY_ATTENTION=flex surfaces the error instead."""
    from factory.model import attention

    config = micro_config("debug", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = build_model(config, "none", seed=9).eval()
    ids, mask = padded_batch(config.vocab_size, 40)
    with torch.no_grad():
        expected = model(ids, mask).last_hidden_state

    def broken(compiled):
        def run(*args, **kwargs):
            raise RuntimeError("no Triton here")

        return run

    monkeypatch.setattr(attention, "flex_attention_fn", broken)
    monkeypatch.setattr(attention, "_FLEX_FAILED", [])
    monkeypatch.setattr(attention.torch.Tensor, "is_cuda", property(lambda self: True))  # auto's CUDA-only choice
    monkeypatch.setenv("FACTORY_ATTENTION", "auto")
    with torch.no_grad(), caplog.at_level("WARNING", logger="factory"):
        got = model(ids, mask).last_hidden_state
    assert re.search("FlexAttention failed .*no Triton here", caplog.text)
    assert torch.equal(got, expected) and attention._FLEX_FAILED
    monkeypatch.setattr(attention, "_FLEX_FAILED", [])
    monkeypatch.setenv("FACTORY_ATTENTION", "flex")
    with torch.no_grad(), pytest.raises(RuntimeError, match="no Triton here"):
        model(ids, mask)


# ---- shapes between the presets: the same parity as the presets -----------------------------------
# (preset, layers, hidden, heads, ffn): the 3 x 96 x 4 x 200 (head size 24, FFN not 4 x hidden), a
# width from xsmall with 2 heads, and xlarge's conv layer at an odd head size.
SHAPES = [("debug", 3, 96, 4, 200), ("xsmall", 2, 128, 2, None), ("xlarge", 2, 96, 3, 160)]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_custom_shape_to_transformers(shape, tmp_path):
    from factory.model.presets import get_shape
    from tests.conftest import SMALL_VOCAB

    config = get_shape(*shape).config(SMALL_VOCAB)
    _, layers, hidden, heads, ffn = shape
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (layers, hidden, heads)
    assert config.intermediate_size == (ffn or 4 * hidden)
    ours = build_model(config, "mlm", seed=10)
    save_model(ours, tmp_path)
    theirs, info = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    assert theirs.config.intermediate_size == config.intermediate_size
    theirs.eval()
    for length in LENGTHS:
        ids, mask = padded_batch(config.vocab_size, length, seed=length)
        hidden_diff, logits = _compare(ours, theirs, ids, mask)
        assert hidden_diff <= TOL and logits <= TOL, (shape, length, hidden_diff, logits)


@pytest.mark.slow
def test_custom_shape_from_transformers_and_gradients(tmp_path):
    """The other direction (a DebertaV2 of the custom shape loads into ours) and the backward pass."""
    from factory.model.presets import get_shape
    from tests.conftest import SMALL_VOCAB

    config = get_shape("debug", 3, 96, 4, 200).config(SMALL_VOCAB, hidden_dropout_prob=0.0,
                                                      attention_probs_dropout_prob=0.0)  # fmt: skip
    hf_config = transformers.DebertaV2Config(**config.to_hf())
    torch.manual_seed(11)
    theirs = transformers.DebertaV2ForMaskedLM(hf_config).eval()
    theirs.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    for length in (7, 300):
        ids, mask = padded_batch(hf_config.vocab_size, length, seed=length)
        hidden, logits = _compare(ours, theirs, ids, mask)
        assert hidden <= TOL and logits <= TOL, (length, hidden, logits)
    _assert_same_mlm_gradients(ours.train(), theirs.train(), *padded_batch(hf_config.vocab_size, 130))
