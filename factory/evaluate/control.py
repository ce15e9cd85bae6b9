"""The random-init control of an evaluation: the same network, tokenizer and settings, minus the pre-training.

An accuracy alone does not say what pre-training bought: a small encoder fine-tuned from random weights can
transfer across languages through the surface tokens they share, and can beat a badly pre-trained one. So
`--control random` evaluates, beside the model, a randomly initialised model of exactly the model folder's
config.json (a discriminator's for a discriminator folder, a generator's for a generator folder) with the
folder's own spm.model, built by the project's own init (`factory.model.build_model`, as `factory init` and
`factory pretrain` build theirs). It is then fine-tuned with the same seeds and settings, or read out by
retrieval the same way, and the difference is the gain.

The control's weights come from `CONTROL_SEED`, a constant kept apart from the fine-tuning seeds (42 + k)
and from the default pre-training/init seed (0): every run of every model of one shape meets the same
control. It is drawn inside `torch.random.fork_rng`, so building it moves no random stream of the caller
(the fine-tuning head, the dropout masks, a pre-training run that probes it).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONTROL_SEED = 104_729  # the 10,000th prime: not a seed anyone picks for fine-tuning or pre-training
PRETRAINED, CONTROL = "pretrained", "control"


@dataclasses.dataclass(frozen=True)
class Arm:
    """One model an evaluation measures: the folder's pre-trained weights, or its random-init control."""

    name: str  # PRETRAINED or CONTROL
    folder: Path

    @property
    def is_control(self) -> bool:
        return self.name == CONTROL

    def config(self):
        """The folder's ModelConfig: the control's too, unchanged."""
        from factory.model.folder import read_config

        return read_config(self.folder)

    def tokenizer(self):
        """The folder's spm.model, for both arms: the control differs in the weights only."""
        from factory.model.tokenizer import Tokenizer

        return Tokenizer.from_folder(self.folder)

    def model(
        self, head: str = "none", labels: tuple[str, ...] | None = None, problem_type: str | None = None
    ) -> nn.Module:
        """This arm's network with `head` ("none": the bare encoder; "cls", "tokens", "qa": a fresh task head;
        `problem_type` "regression" marks a one-output "cls" head as HF's regression head).

        For the control, the head is drawn from the caller's random stream exactly as `load_model` draws it
        for the pre-trained folder, so under the same `torch.manual_seed` both arms start from the same head."""
        from factory.model import build_model, load_model

        if not self.is_control:
            model = load_model(self.folder, head=head, labels=labels)
        else:
            config = self.config()
            if labels is not None and tuple(labels) != config.labels:
                config = config.replace(labels=tuple(labels))
            model = build_model(config, head)  # the head from the caller's stream; the encoder is replaced below
            encoder = model if head == "none" else model.deberta
            encoder.load_state_dict(control_encoder_state(self.folder))
        if problem_type != model.config.problem_type:
            model.config = model.config.replace(problem_type=problem_type)  # saved into config.json as HF reads it
        return model.eval()

    def describe(self) -> dict[str, Any]:
        """What results.json says about this arm."""
        if not self.is_control:
            return {"kind": PRETRAINED, "folder": str(self.folder)}
        return {
            "kind": "random",
            "seed": CONTROL_SEED,
            "init": "factory.model.build_model (N(0, initializer_range) weights, as `factory init`)",
            "config": str(self.folder / "config.json"),
            "tokenizer": str(self.folder / "spm.model"),
        }


def arms(folder: Path, control: str | None) -> list[Arm]:
    """The arms `--control` asks for: the model, then (random) its control."""
    out = [Arm(PRETRAINED, Path(folder))]
    if control == "random":
        out.append(Arm(CONTROL, Path(folder)))
    return out


def control_encoder_state(folder: Path) -> dict[str, torch.Tensor]:
    """The control's encoder weights for the folder's config (a copy: the caller may train them)."""
    from factory.model.folder import read_config

    return control_state_of(read_config(folder))


def control_state_of(config) -> dict[str, torch.Tensor]:
    """The control's encoder weights for a ModelConfig (a pre-training run's probe has no folder yet); the same
    weights `control_encoder_state` gives for the folder that run exports, the config being the same shape."""
    config = config.replace(labels=type(config)().labels)  # the label names do not touch the encoder
    return {name: t.clone() for name, t in _encoder_state(config).items()}


@functools.lru_cache(maxsize=1)  # one shape per run; a probe asks again every N steps
def _encoder_state(config) -> dict[str, torch.Tensor]:
    from factory.model import build_model

    with torch.random.fork_rng(devices=[]):
        return build_model(config, "none", seed=CONTROL_SEED).state_dict()


def with_control(
    report: dict[str, Any],
    arm: Arm,
    control: dict[str, Any],
    control_average: dict[str, Any],
    keys: tuple[str, ...],
    metric: str = "accuracy",
) -> dict[str, Any]:
    """`report` plus the control: `control` shaped as `results`, `control_average` as `average`, what the control
    was (`control_model`), and `gain` = pre-trained - control in points of `metric`, per language and key, with
    "avg"."""

    def points(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
        return {k: round(ours[k][metric] - theirs[k][metric], 2) for k in keys if k in ours and k in theirs}

    gain = {lang: points(report["results"][lang], control[lang]) for lang in control}
    gain["avg"] = points(report["average"], control_average)
    return {**report, "control": control, "control_average": control_average, "control_model": arm.describe(),
            "gain": gain}  # fmt: skip
