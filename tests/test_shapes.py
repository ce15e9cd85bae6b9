"""Shapes between the presets: `--layers --hidden --heads --ffn` on init, pretrain and recipes.

The forward pass of custom shapes against transformers is in test_parity.py; here: the shape rules, what
`factory init` writes (it loads in transformers with those sizes), the dry-run counts, the recipe plan,
the honest labels (config.json, manifests, card) and the one-line errors for shapes that cannot be built.
"""

import json
import re

import pytest
import transformers
from click.testing import CliRunner

from factory.cli.main import cli
from factory.core.errors import ConfigError
from factory.core.options import Layer, resolve
from factory.model.init_config import InitConfig
from factory.model.presets import PRESETS, VocabSize, count_parameters, generator_depth, get_shape, shape_of
from factory.pretrain.config import PretrainConfig
from factory.pretrain.plan import count_rtd_parameters

SHAPE = ["--preset", "debug", "--layers", "3", "--hidden", "96", "--heads", "4", "--ffn", "200"]
LABEL = "custom (3 layers, hidden 96, 4 heads, FFN 200, from debug)"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    return lines[0]


# ---- the rules -----------------------------------------------------------------------------------
def test_no_override_is_the_preset_itself():
    for name, preset in PRESETS.items():
        shape = get_shape(name)
        assert not shape.custom and shape.name == name and shape.describe() == name
        assert shape.config(VocabSize.parse("2k")) == preset.config(VocabSize.parse("2k"))
        assert shape.config().factory["preset"] == name and "shape" not in shape.config().factory
    same = get_shape("debug", layers=2, hidden=64)  # the preset's own sizes, given explicitly: still the preset
    assert not same.custom and same.name == "debug"


def test_overrides_keep_the_preset_rules():
    shape = get_shape("xlarge", layers=5, hidden=192, heads=3)
    assert shape.custom and shape.name == "custom" and shape.base == "xlarge"
    assert shape.ffn == 4 * 192  # --ffn defaults to 4 x the new hidden, every preset's ratio
    assert shape.generator_layers == generator_depth(5) == 2  # half the depth, as the presets
    assert get_shape("debug", layers=1).generator_layers == 1  # never zero layers
    config = shape.config(VocabSize.parse("2k"))
    assert config.conv_kernel_size == 3  # xlarge's conv layer comes along
    assert config.factory["preset"] == "custom" and config.factory["base_preset"] == "xlarge"
    assert config.factory["shape"] == {"layers": 5, "hidden": 192, "heads": 3, "ffn": 768, "generator_layers": 2}
    assert get_shape("debug", ffn=100).ffn == 100 and get_shape("debug", ffn=100).hidden == 64


@pytest.mark.parametrize(
    "values, expected",
    [({"hidden": 100, "heads": 3}, ["--hidden 100", "--heads 3", "1, 2, 4, 5, 10, 20, 25"]),
     ({"heads": 3}, ["--heads 3", "debug preset's hidden size 64", "--hidden"]),
     ({"preset": "xsmall", "hidden": 100}, ["--hidden 100", "xsmall preset's 6 heads", "--heads"])],
)  # fmt: skip
def test_bad_shapes_are_config_problems(values, expected):
    for cls in (InitConfig, PretrainConfig):
        with pytest.raises(ConfigError) as e:
            resolve(cls, [Layer({"preset": "debug", "out": "o", **values}, "--")])
        assert all(text in str(e.value) for text in expected), str(e.value)
    with pytest.raises(ConfigError, match="--hidden 100"):
        get_shape("debug", hidden=100, heads=3)


def test_shape_of_a_config_is_the_one_route():
    config = resolve(InitConfig, [Layer({"preset": "debug", "layers": 3, "hidden": 96, "heads": 4, "ffn": 200,
                                         "out": "o"}, "--")])  # fmt: skip
    assert shape_of(config) == get_shape("debug", 3, 96, 4, 200)
    assert shape_of(resolve(PretrainConfig, [Layer({"preset": "base", "out": "o"}, "--")])) == get_shape("base")


# ---- factory init ------------------------------------------------------------------------------
def test_init_writes_a_custom_shape_that_transformers_loads(tmp_path):
    out = tmp_path / "m"
    result = run("init", *SHAPE, "--vocab-size", "1k", "--head", "mlm", "--out", out)
    assert result.exit_code == 0, result.output
    assert LABEL in result.output and "debug," not in result.output
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    hf = model.config
    assert (hf.num_hidden_layers, hf.hidden_size, hf.num_attention_heads, hf.intermediate_size) == (3, 96, 4, 200)
    assert len(model.deberta.encoder.layer) == 3
    assert model.deberta.encoder.layer[0].intermediate.dense.out_features == 200
    factory = json.loads((out / "config.json").read_text())["factory"]
    assert factory["preset"] == "custom" and factory["base_preset"] == "debug"
    assert factory["shape"] == {"layers": 3, "hidden": 96, "heads": 4, "ffn": 200, "generator_layers": 1}
    manifest = json.loads((out / "factory.json").read_text())
    assert manifest["preset"] == "custom" and manifest["base_preset"] == "debug" and manifest["shape"]["ffn"] == 200
    assert manifest["arguments"]["layers"] == 3 and manifest["arguments"]["hidden"] == 96
    expected = count_parameters(get_shape("debug", 3, 96, 4, 200).config(VocabSize.parse("1k")))
    assert (
        manifest["parameters"] == expected and sum(p.numel() for p in model.deberta.parameters()) == expected["total"]
    )


def test_init_of_a_preset_still_says_the_preset(tmp_path):
    result = run("init", "--preset", "debug", "--vocab-size", "1k", "--out", tmp_path / "m")
    assert result.exit_code == 0 and "wrote" in result.output and ": debug," in result.output
    manifest = json.loads((tmp_path / "m" / "factory.json").read_text())
    assert manifest["preset"] == "debug" and manifest["shape"]["layers"] == 2


@pytest.mark.parametrize("command", ["init", "pretrain"])
def test_bad_shape_is_one_line_exit_2(command, tmp_path):
    extra = ["--dry-run", "--vocab-size", "2k"] if command == "pretrain" else ["--vocab-size", "1k"]
    line = one_error_line(run(command, "--preset", "debug", "--hidden", "100", "--heads", "3", *extra,
                              "--out", tmp_path / "m"))  # fmt: skip
    assert "--hidden 100" in line and "--heads 3" in line
    line = one_error_line(run(command, "--preset", "debug", "--layers", "0", "--ffn", "-4", *extra,
                              "--out", tmp_path / "m"))  # fmt: skip
    assert line.startswith("Error: 2 problems") and "'--layers'" in line and "'--ffn'" in line
    assert not (tmp_path / "m").exists()


# ---- factory pretrain --dry-run and factory run --dry-run -----------------------------------------
def test_pretrain_dry_run_plans_the_custom_shape(tmp_path):
    result = run("pretrain", *SHAPE, "--vocab-size", "2k", "--dry-run", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("custom shape from debug (3 layers, generator 1, hidden 96, 4 heads, FFN 200)")
    plan = json.loads(result.output.strip().splitlines()[-1])
    shape, vocab = get_shape("debug", 3, 96, 4, 200), VocabSize.parse("2k")
    assert plan["preset"] == "custom" and plan["shape"]["base_preset"] == "debug" and plan["shape"]["hidden"] == 96
    assert plan["parameters"] == count_rtd_parameters(shape, vocab)
    assert plan["parameters"]["discriminator_body"] > count_parameters(shape.config(vocab))["backbone"]  # + RTD head
    assert plan["parameters"]["generator_body"] < count_parameters(shape.config(vocab, num_hidden_layers=2))["backbone"]
    assert plan["parameters"] != count_rtd_parameters("debug", vocab)
    deeper = json.loads(run("pretrain", *SHAPE[:2], "--layers", "6", "--vocab-size", "2k", "--dry-run",
                            "--out", tmp_path / "r").output.strip().splitlines()[-1])  # fmt: skip
    assert deeper["shape"]["generator_layers"] == 3 and deeper["shape"]["layers"] == 6
    assert deeper["flops_per_step"] > json.loads(result.output.strip().splitlines()[-1])["flops_per_step"]


def test_recipe_sets_the_shape_in_steps_pretrain(tmp_path):
    sets = [f"steps.pretrain.{k}={v}" for k, v in (("layers", 3), ("hidden", 96), ("heads", 4), ("ffn", 200))]
    result = run("run", "demo", "--dry-run", "--run-dir", tmp_path, *[x for s in sets for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert "--layers 3 --hidden 96 --heads 4 --ffn 200" in result.output  # the step's command line
    line = next(x for x in result.output.splitlines() if x.startswith("exported model"))
    assert line.startswith(f"exported model ({LABEL}, 2,000 pieces)")
    counts = count_parameters(get_shape("debug", 3, 96, 4, 200).config(VocabSize.parse("2000")))
    printed = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]{3,}", line)]
    assert printed[-3:] == [counts["backbone"], counts["embedding"], counts["total"]], line
    assert "custom shape from debug (3 layers, generator 1" in result.output


def test_recipe_reports_a_bad_shape_with_its_other_problems(tmp_path):
    result = run("run", "demo", "--dry-run", "--run-dir", tmp_path, "--set", "steps.pretrain.hidden=100",
                 "--set", "steps.pretrain.heads=3", "--set", "steps.shards.seq_len=2")  # fmt: skip
    line = one_error_line(result)
    assert "--hidden 100 is not divisible by --heads 3" in line and "steps.shards.seq_len" in line


# ---- the card -----------------------------------------------------------------------------------
def _card_facts(tmp_path, config):
    from factory.model import build_model, save_model
    from factory.publish.card import collect_facts

    save_model(build_model(config, "rtd", seed=0), tmp_path)
    return collect_facts(tmp_path, "me/x")


def test_card_does_not_name_a_custom_shape_after_its_preset(tmp_path):
    from factory.publish.card import build_card

    facts = _card_facts(tmp_path / "a", get_shape("debug", 3, 96, 4, 200).config(VocabSize.parse("1k")))
    assert facts.preset == LABEL
    text = str(build_card(facts))
    assert f"a DeBERTa-v3 encoder of size {LABEL}" in text and f"| Size | {LABEL} |" in text
    assert "debug DeBERTa" not in text
    preset = _card_facts(tmp_path / "b", get_shape("debug").config(VocabSize.parse("1k")))
    assert preset.preset == "debug" and "a debug DeBERTa-v3 encoder" in str(build_card(preset))


def test_card_trusts_the_sizes_over_a_preset_name(tmp_path):
    """A folder whose config.json says `preset: debug` but holds other sizes (written by hand or by an older
    factory) is labelled by what it is; an RTD generator of the preset is still the preset."""
    config = PRESETS["debug"].config(VocabSize.parse("1k"), num_hidden_layers=4)
    config = config.replace(factory={**config.factory, "preset": "debug"})
    assert _card_facts(tmp_path / "a", config).preset == "custom (4 layers, hidden 64, 2 heads, FFN 256, from debug)"
    generator = config.replace(num_hidden_layers=1, factory={**config.factory, "role": "rtd-generator"})
    assert _card_facts(tmp_path / "b", generator).preset == "debug"


# ---- resume ------------------------------------------------------------------------------------
def test_a_checkpoint_from_before_shapes_is_refused_and_a_shape_resumes_only_as_itself(tmp_path):
    """trainer.json written before shapes were recorded (no "shape") is also from before per-row noise (no
    "format"): it cannot resume exactly, so it is refused by the format check. A current one resumes only with
    its own shape."""
    from types import SimpleNamespace

    from factory.pretrain.checkpoint import TRAINER_FORMAT, check_resume

    vocab = VocabSize.parse("1k")
    old = {
        "preset": "debug",
        "sharing": "gdes",
        "seq_len": 32,
        "batch": 8,
        "vocab_fingerprint": "f",
        "vocab_rows": 1100,
    }

    def plan(shape):
        return SimpleNamespace(shape=shape, seq_len=32, batch=8, vocab=vocab)

    args = SimpleNamespace(preset="debug", sharing="gdes", masking="spread")
    with pytest.raises(ConfigError, match="trainer format 1"):
        check_resume(old, args, plan(get_shape("debug")), "f", tmp_path)
    current = {**old, "format": TRAINER_FORMAT, "masking": "spread", "shape": get_shape("debug").sizes()}
    check_resume(current, args, plan(get_shape("debug")), "f", tmp_path)
    with pytest.raises(ConfigError, match="--layers/--hidden/--heads/--ffn"):
        check_resume(current, args, plan(get_shape("debug", layers=3)), "f", tmp_path)
