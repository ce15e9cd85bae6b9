"""The library entry point of `factory eval SUITE`: a resolved config -> a `Request` -> `runner.run`.

`factory eval` and `factory run` both call `evaluate`, so a recipe's eval step is the same code path as the
command, with no command line in between.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from factory.config import Layer, override, to_json
from factory.configs import ClassifyConfig, EvalConfig
from factory.errors import FactoryError


def setting_layer(pairs: list[str]) -> Layer:
    """`--set key=value` strings as a layer over the suite file's fine-tuning settings."""
    values = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FactoryError(f"--set {item!r} is not KEY=VALUE (e.g. --set epochs=3)")
        values[key.strip()] = value.strip()
    return Layer(values, "--set ")


def make_request(suite_name: str, config: EvalConfig):
    """The suite file, `--set` over its settings, and (classify) the files and label names."""
    from factory.evaluate.data import check_files, infer_labels
    from factory.evaluate.runner import Request
    from factory.evaluate.suite import load_suite

    suite = load_suite("xnli" if isinstance(config, ClassifyConfig) else suite_name)
    extra: dict[str, Any] = {}
    if isinstance(config, ClassifyConfig):
        files = {"train": config.train, "validation": config.validation, "test": config.test}
        files = {split: path for split, path in files.items() if path is not None}
        check_files(files)
        labels = tuple(config.labels) or infer_labels(files)
        if len(labels) < 2:
            raise FactoryError(f"the data has {len(labels)} label(s) {list(labels)}; classification needs 2 or more")
        suite = dataclasses.replace(
            suite,
            name="classify",
            dataset=None,
            languages=(),
            labels=labels,
            text_a=config.columns[0],
            text_b=config.columns[1] if len(config.columns) == 2 else None,
            references={},
        )
        extra = {"files": files, "splits": tuple(s for s in ("validation", "test") if s in files)}
    return Request(
        suite=suite,
        model=config.model,
        data="files" if extra else (config.data or suite.dataset or ""),
        train_language=config.train_lang or suite.train_language,
        languages=config.langs,
        runs=config.runs,
        settings=override(suite.settings, [setting_layer(config.set)]),
        out=config.out,
        force=config.force,
        control=config.control,
        arguments=to_json(config),
        **extra,
    )


def evaluate(suite_name: str, config: EvalConfig) -> dict[str, Any]:
    """Fine-tune and test as the suite says; returns the results.json dict (written into `config.out`). `--model`
    is a folder or a Hub id (factory/source.py): the request reads the resolved files and records the commit."""
    from factory.evaluate.runner import run
    from factory.manifest import ModelSource
    from factory.source import resolve_model

    request = make_request(suite_name, config)
    source = resolve_model(config.model)
    return run(dataclasses.replace(request, model=source.path, source=ModelSource(**source.describe())))
