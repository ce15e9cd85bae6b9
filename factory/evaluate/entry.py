"""The library entry point of `factory eval SUITE`: a resolved config -> a `Request` -> `runner.run`.

`factory eval` and `factory run` both call `evaluate`, so a recipe's eval step is the same code path as the
command, with no command line in between.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.options import override, to_json
from factory.evaluate.config import ClassifyConfig, EvalConfig
from factory.evaluate.suite import setting_layer  # noqa: F401  (recipe.py imports it from here)


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
    if suite.is_benchmark:
        extra["tasks"] = getattr(config, "tasks", "all")
    elif suite.splits != ("validation", "test") and "splits" not in extra:
        extra["splits"] = suite.splits
    return Request(
        suite=suite,
        model=config.model,
        # a benchmark's default is each task's own dataset (benchmark.task_requests), not the first task's
        data="files" if "files" in extra else (config.data or ("" if suite.is_benchmark else suite.dataset) or ""),
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
    is a folder or a Hub id (factory/core/sources.py): the request reads the resolved files and records the commit. The
    main process holds --out's lock throughout: a second evaluation into the same folder stops at once."""
    import contextlib

    from factory.core.launch import is_main_process
    from factory.core.manifest import ModelSource
    from factory.core.outputs import check_target, output_lock
    from factory.core.sources import resolve_model
    from factory.evaluate.benchmark import run_benchmark
    from factory.evaluate.runner import run

    request = make_request(suite_name, config)
    source = resolve_model(config.model)
    request = dataclasses.replace(request, model=source.path, source=ModelSource(**source.describe()))
    check_target(Path(request.out))
    with output_lock(Path(request.out)) if is_main_process() else contextlib.nullcontext():
        return run_benchmark(request) if request.suite.is_benchmark else run(request)
