"""The typed configs and their one resolver: precedence, every problem at once, options generated from the fields."""

import dataclasses
import importlib
import types
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from factory.cli.main import COMMANDS, cli
from factory.core.errors import ConfigError
from factory.core.options import Layer, command_line, from_flags, resolve, to_json
from factory.pretrain.config import PretrainConfig
from factory.vocab.config import VocabConfig

DEMO = Path(__file__).parents[1] / "recipes" / "demo.yaml"
# every step's config module (each step's package holds its own: docs/layout.md), read as one namespace
CONFIG_MODULES = ("vocab", "shards", "pretrain", "model.init_config", "evaluate", "publish", "derive", "recipe")
configs = types.SimpleNamespace(**{
    k: v for m in CONFIG_MODULES
    for k, v in vars(importlib.import_module(f"factory.{m}" if "." in m else f"factory.{m}.config")).items()
})  # fmt: skip
CONFIGS = [c for c in vars(configs).values() if isinstance(c, type) and dataclasses.is_dataclass(c)]


def test_defaults_then_files_then_flags():
    spec = Layer({"size": "128k", "alpha": 0.5, "langs": ["en", "pt"]}, "spec s.yaml: ")
    recipe = Layer({"alpha": 0.7, "max_sentences": 1000}, "steps.vocab.")
    flags = from_flags({"alpha": "0.2", "out": "v", "corpus": (), "seed": None})
    config = resolve(VocabConfig, [spec, recipe, flags])
    assert (config.size, config.alpha, config.max_sentences, config.langs) == ("128k", 0.2, 1000, ["en", "pt"])
    assert config.out == Path("v") and config.model_type == "unigram" and config.seed == 0  # defaults
    assert resolve(VocabConfig, [Layer({"langs": "en, pt", "out": "v"})]).langs == ["en", "pt"]  # comma text


def test_every_problem_in_one_error():
    layer = Layer({"lr": float("nan"), "max_stepz": 3, "bacth": 8, "preset": "medium", "out": "o"}, "steps.pretrain.")
    with pytest.raises(ConfigError) as e:
        resolve(PretrainConfig, [layer])
    message = str(e.value)
    assert message.startswith("4 problems:") and "\n" not in message
    for part in ("steps.pretrain.lr: nan is not a finite number", "unknown key 'max_stepz' (did you mean max_steps?)",
                 "unknown key 'bacth' (did you mean batch?)", "'medium' is not one of debug"):  # fmt: skip
        assert part in message


def test_recipe_with_two_wrong_keys_and_a_nan_lr_names_all_three(tmp_path):
    recipe = yaml.safe_load(DEMO.read_text())
    recipe["steps"]["pretrain"].update(lr=float("nan"), max_stepz=10)
    recipe["steps"]["vocab"]["sizes"] = "1000"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(cli, ["run", str(path), "--dry-run", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: 3 problems:"), result.output
    assert "'sizes'" in lines[0] and "'max_stepz'" in lines[0] and "steps.pretrain.lr: nan" in lines[0]
    assert not (tmp_path / "r").exists()


def test_several_bad_flags_are_one_line_exit_2(tmp_path):
    args = ["pretrain", "--lr", "nan", "--batch", "0", "--sharing", "x", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and result.output.startswith("Error: 3 problems:"), result.output
    assert "'--lr'" in result.output and "'--batch'" in result.output and "'--sharing'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_yaml_booleans_are_not_text():
    with pytest.raises(ConfigError, match="quote it"):
        resolve(VocabConfig, [Layer({"langs": ["nl", False], "out": "v"}, "spec: ")])
    assert resolve(VocabConfig, [Layer({"langs": ["nl", "no"], "out": "v"})]).langs == ["nl", "no"]


def test_numbers_from_text():
    config = resolve(PretrainConfig, [from_flags({"tokens": "1e9", "lr": "5e-4", "dropout": "none", "out": "o"})])
    assert config.tokens == 1_000_000_000 and config.lr == 5e-4 and config.dropout is None
    with pytest.raises(ConfigError, match="not a whole number"):
        resolve(PretrainConfig, [from_flags({"batch": "2.5", "out": "o"})])


def _command(name: str) -> click.Command:
    module, attr = COMMANDS[name.split()[0]].split(":")
    import importlib

    command = getattr(importlib.import_module(module), attr)
    return command.commands[name.split()[1]] if " " in name else command


@pytest.mark.parametrize(
    "name, config",
    [("vocab", configs.VocabConfig), ("shards", configs.ShardsConfig), ("pretrain", configs.PretrainConfig),
     ("init", configs.InitConfig), ("presets", configs.PresetsConfig), ("eval xnli", configs.EvalConfig),
     ("eval classify", configs.ClassifyConfig), ("publish", configs.PublishConfig), ("run", configs.RunConfig),
     ("vocab report", configs.VocabReportConfig), ("eval retrieval", configs.RetrievalConfig)],
)  # fmt: skip
def test_options_are_the_config_fields(name, config):
    """Every CLI field is an option of its command (nothing declared twice), with its help and default."""
    command = _command(name)
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    arguments = {p.name for p in command.params if isinstance(p, click.Argument)}
    for f in dataclasses.fields(config):
        if not f.metadata["cli"]:  # recipe/file only, or the command's positional argument
            assert f.name not in options
            continue
        assert f.name in options, f"{name}: no option for {f.name}"
        assert f.metadata["help"] and options[f.name].help.startswith(f.metadata["help"])
        if f.default not in (None, False, dataclasses.MISSING) and not isinstance(f.default, bool):
            assert f"[default: {f.default}" in options[f.name].help
    assert {"help"} | {f.name for f in dataclasses.fields(config)} >= set(options) | arguments


def test_command_line_gives_the_same_config():
    config = resolve(PretrainConfig, [Layer({"preset": "debug", "batch": 32, "log_with": ["tensorboard", "wandb"],
                                             "compile": True, "lr": 0.002, "out": "o"})])  # fmt: skip
    args = command_line(config)
    assert args[:2] == ["--preset", "debug"] and "--compile" in args and args.count("--log-with") == 2
    parsed = _command("pretrain").make_context("pretrain", list(args)).params
    assert resolve(PretrainConfig, [from_flags(parsed)]) == config


def test_manifest_json_has_the_schema_and_plain_values():
    data = to_json(resolve(PretrainConfig, [Layer({"out": Path("o"), "log_with": ["x"]})]))
    assert data["schema"] == PretrainConfig.SCHEMA and data["out"] == "o" and data["log_with"] == ["x"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_configs_are_frozen_and_versioned(config):
    assert config.__dataclass_params__.frozen and isinstance(config.SCHEMA, int)
