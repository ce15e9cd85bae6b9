import pytest

from factory.core.errors import ConfigError
from factory.model.presets import PRESETS, PUBLISHED_BACKBONE_M, VocabSize, count_parameters, get_preset


@pytest.mark.parametrize("name", ["xsmall", "small", "base", "large"])
def test_backbone_matches_published_size(name):
    # The README's figures were counted on the released checkpoints, which also carry the unused absolute
    # position table and the RTD head (~1M at base); the encoder alone is within 3% of them.
    counts = count_parameters(PRESETS[name].config(VocabSize.parse("128k")))
    published = PUBLISHED_BACKBONE_M[name] * 1e6
    assert abs(counts["backbone"] - published) / published < 0.03, counts


def test_embedding_parameters_of_128k_at_768_are_98m():
    counts = count_parameters(PRESETS["base"].config(VocabSize.parse("128k")))
    assert counts["embedding"] == 128_100 * 768
    assert round(counts["embedding"] / 1e6) == 98


def test_debertina_sizes_from_its_card():
    # DeBERTina card: base 85.5M + 24.6M (32k), 85.5M + 98.3M (128k); xsmall 21.5M + 49.2M.
    base32 = count_parameters(PRESETS["base"].config(VocabSize.parse("32k")))
    assert round(base32["backbone"] / 1e5) == 855 and round(base32["embedding"] / 1e5) == 247
    xs = count_parameters(PRESETS["xsmall"].config(VocabSize.parse("128k")))
    assert round(xs["backbone"] / 1e5) == 215 and round(xs["embedding"] / 1e5) == 492


def test_vocab_sizes():
    assert VocabSize.parse("128k").rows == 128_100
    assert VocabSize.parse("128000") == VocabSize.parse("128k")
    assert VocabSize.parse("250k").rows == 251_000
    assert VocabSize.parse(5000).rows == 5100
    assert VocabSize.parse("128k", "pad128").rows % 128 == 0
    assert VocabSize.parse("128k", "pad128").rows > 128_000


@pytest.mark.parametrize("bad", ["12", "abc", "1.5k", "", "-3k"])
def test_bad_vocab_sizes(bad):
    with pytest.raises(ConfigError):
        VocabSize.parse(bad)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="xsmall"):
        get_preset("medium")


def test_v3_settings_in_every_preset():
    for name, preset in PRESETS.items():
        cfg = preset.config()
        hf = cfg.to_hf()
        assert hf["relative_attention"] and hf["position_buckets"] == 256 and hf["share_att_key"]
        assert hf["position_biased_input"] is False and hf["pos_att_type"] == ["p2c", "c2p"]
        assert hf["norm_rel_ebd"] == "layer_norm" and hf["layer_norm_eps"] == 1e-7
        if name != "debug":
            assert cfg.head_size == 64
        assert (cfg.conv_kernel_size == 3) == (name in ("xlarge", "xxlarge"))
