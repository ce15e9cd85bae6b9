"""A benchmark of several tasks in one command (glue, xtreme, assin2): every task is checked first, then each
runs as its own evaluation into OUT/<task>/, and OUT gets the summary across tasks and languages, as the
XTREME leaderboard shows it: results.json (every task's results, so the model card reads one file),
results.md (one row per task: the main metric per language and averaged, the control and the references) and
a chart of the averages.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.evaluate.runner import Prepared, Request, execute, make_accelerator, prepare
from factory.evaluate.suite import select_tasks
from factory.launch import check_launch

KEEP = ("task", "metrics", "main_metric", "languages", "train_language", "runs", "seeds", "results", "average",
        "references", "dataset", "control", "control_average", "gain")  # fmt: skip


def task_requests(request: Request) -> list[Request]:
    """One Request per selected task: its own suite, settings (the suite's, then --set), data and output."""
    from factory.config import override
    from factory.evaluate.suite import setting_layer

    suite = request.suite
    data = request.data
    if data.startswith("hf:"):
        raise FactoryError(f"--data {data}: {suite.name} reads each task's own dataset; give a local DIR with "
                           "one folder per task, or leave --data out")  # fmt: skip
    out = []
    wanted = [x.strip() for x in request.languages.split(",") if x.strip()] if request.languages != "all" else None
    for name in select_tasks(suite, request.tasks):
        task = suite.tasks[name]
        if task.task == "retrieval" and not data:
            raise FactoryError(
                f"{name} is parallel-sentence retrieval on local files: give --data DIR with {name}/<lang>.tsv "
                f"(en<TAB>translation) or {name}/<lang>.txt, or leave it out of --tasks"
            )
        if data:
            folder = Path(data) / name
            if not folder.is_dir():
                raise FactoryError(f"--data {data} has no {name}/ folder; a benchmark's data has one folder per task")
            source = str(folder)
        else:
            source = task.dataset or ""
        langs = "all" if wanted is None else ",".join(x for x in wanted if x in task.languages) or "all"
        settings = override(task.settings, [setting_layer(request.arguments.get("set") or [])])
        out.append(dataclasses.replace(
            request, suite=task, data=source, train_language=task.train_language, languages=langs,
            settings=settings, out=request.out / name, force=True, splits=task.splits,
        ))  # fmt: skip
    return out


def run_benchmark(request: Request) -> dict[str, Any]:
    from factory.export import weights_fingerprint
    from factory.outputs import check_output

    check_output(request.out, request.force)
    requests = task_requests(request)
    retrieval = [r for r in requests if r.suite.task == "retrieval"]
    for r in retrieval:  # checked now: a launch of several processes, misaligned files, a missing pivot (one
        from factory.evaluate.parallel import read_parallel  # line, nothing written, nothing fine-tuned)
        from factory.evaluate.retrieval import check_one_process

        names = ", ".join(x.suite.name for x in retrieval)
        check_one_process(f"run the benchmark without torchrun / accelerate launch, or leave {names} out of --tasks")
        read_parallel(r.data, "en", r.languages)
    prepared: list[Prepared] = [prepare(r, check_out=False) for r in requests if r not in retrieval]
    accelerator = make_accelerator(request.settings.precision) if prepared else None
    if accelerator is not None:
        check_launch(accelerator.num_processes, f"the {request.suite.name} benchmark")
    reports = {p.request.suite.name: execute(p, accelerator) for p in prepared}
    for r in retrieval:
        reports[r.suite.name] = _retrieval(r)
    summary = {
        "schema": "factory.eval/v1",
        "suite": request.suite.name,
        "benchmark": True,
        "model": request.model_name,
        "model_fingerprint": weights_fingerprint(request.model),  # the weights evaluated: publish checks them
        **({"revision": request.source.revision} if request.source and request.source.revision else {}),
        "tasks": {
            name: {k: r[k] for k in KEEP if k in r} | {"task": r.get("task", "classification")}
            for name, r in reports.items()
        },  # fmt: skip
        "references": request.suite.references,
    }
    if accelerator is None or accelerator.is_main_process:
        from factory.evaluate.report import benchmark_chart, benchmark_markdown

        (request.out / "results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        (request.out / "results.md").write_text(benchmark_markdown(summary))
        benchmark_chart(summary, request.out / f"{request.suite.name}_summary.png")
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return summary


def _retrieval(request: Request) -> dict[str, Any]:
    """BUCC/Tatoeba through `factory eval retrieval` (accuracy@1 against en, no fine-tuning), in the summary's shape:
    its two directions stand where a task's splits do."""
    from factory.config import Layer, resolve
    from factory.configs import RetrievalConfig
    from factory.evaluate.retrieval import run

    values = {"model": request.model, "data": request.data, "langs": request.languages, "out": request.out,
              "force": True, "control": request.control}  # fmt: skip
    report = run(resolve(RetrievalConfig, [Layer(values, "")]))
    return {**report, "task": "retrieval", "main_metric": "accuracy", "metrics": ["accuracy"]}
