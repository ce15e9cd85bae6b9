"""A benchmark of several tasks in one command (glue, xtreme, assin2): every task is checked first, then each
runs as its own evaluation into OUT/<task>/, and OUT gets the summary across tasks and languages, as the
XTREME leaderboard shows it: results.json (every task's results, so the model card reads one file),
results.md (one row per task: the main metric per language and averaged, the control and the references) and
a chart of the averages.

OUT is whole or absent, and a suite that stops part-way keeps its finished tasks: the suite is written into a
hidden work folder beside OUT (`.OUT.eval-work`, outputs.work_folder), each task into its own sub-folder as it
finishes (staged itself, so whole), and the work folder is renamed to OUT only once every task and the summary
are in it. Ctrl-C, a crash or a kill leaves no OUT; the same command run again keeps each finished task whose
inputs are unchanged (`resume.json` holds a key per task: `task_key`) and runs the others. A task whose inputs
changed (a `--set`, the model's files, its data files, the suite file) runs again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.launch import check_launch, is_main_process
from factory.evaluate.runner import Prepared, Request, execute, make_accelerator, prepare
from factory.evaluate.suite import Suite, select_tasks

log = logging.getLogger(__name__)
RESUME_FILE = "resume.json"  # in the work folder: task -> the key of the inputs its finished folder was made from

KEEP = ("task", "metrics", "main_metric", "languages", "train_language", "runs", "seeds", "results", "average",
        "references", "dataset", "control", "control_average", "gain")  # fmt: skip


def task_requests(request: Request, work: Path) -> list[Request]:
    """One Request per selected task: its own suite, settings (the suite's, then --set), languages, data and
    output folder (`work`/<task>). --train-lang and --langs are checked against every selected task first."""
    from factory.core.options import override
    from factory.evaluate.suite import setting_layer

    suite = request.suite
    data = request.data
    if data.startswith("hf:"):
        raise FactoryError(f"--data {data}: {suite.name} reads each task's own dataset; give a local DIR with "
                           "one folder per task, or leave --data out")  # fmt: skip
    names = select_tasks(suite, request.tasks)
    languages = task_languages(suite, names, request.arguments.get("train_lang"), request.languages)
    out = []
    for name in names:
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
        train_language, langs = languages[name]
        settings = override(task.settings, [setting_layer(request.arguments.get("set") or [])])
        out.append(dataclasses.replace(
            request, suite=task, data=source, train_language=train_language, languages=langs,
            settings=settings, out=work / name, force=True, splits=task.splits,
        ))  # fmt: skip
    return out


def task_languages(suite: Suite, names: list[str], train_lang: str | None, langs: str) -> dict[str, tuple[str, str]]:
    """Each selected task's train language and `--langs` value. The options hold for the whole suite, so each is
    checked against every selected task, as `eval xnli` checks them against its one task (runner.resolve_languages):
    an option some task cannot honour is one line naming it and what the tasks accept, never dropped for that task.
    --langs: every language is one some selected task tests, and every task tests one of them."""
    tasks = {name: suite.tasks[name] for name in names}
    if train_lang is not None:
        _check_train_language(suite, tasks, train_lang)
    wanted = None if langs.strip() == "all" else list(dict.fromkeys(x.strip() for x in langs.split(",") if x.strip()))
    if wanted is not None:
        known = list(dict.fromkeys(lang for t in tasks.values() for lang in t.languages))
        open_ended = any(not t.languages for t in tasks.values())  # no `languages`: it tests what its data holds
        unknown = [lang for lang in wanted if lang not in known and not open_ended]
        if unknown or not wanted:
            raise FactoryError(f"unknown language {', '.join(unknown) or '(none)'} in --langs; {suite.name}'s tasks "
                               f"({', '.join(tasks)}) test {', '.join(known)}")  # fmt: skip
        missing = [name for name, t in tasks.items() if t.languages and not set(wanted) & set(t.languages)]
        if missing:
            raise FactoryError(f"--langs {','.join(wanted)}: " + "; ".join(
                f"{name} tests none of them ({', '.join(tasks[name].languages)})" for name in missing)
                + "; add one of its languages, or leave it out of --tasks")  # fmt: skip
    return {
        name: (train_lang or t.train_language,
               "all" if wanted is None else ",".join(x for x in wanted if x in t.languages or not t.languages))
        for name, t in tasks.items()
    }  # fmt: skip


def trainable_languages(task: Suite) -> set[str] | None:
    """The languages a task can fine-tune in (None: any, its data decides): its train language alone when it trains
    on a set of its own in another dataset (`train:`, e.g. XQuAD on SQuAD, English only), else any it has."""
    if task.train:
        return {task.train_language}
    return {*task.languages, task.train_language} if task.languages else None


def _check_train_language(suite: Suite, tasks: dict[str, Suite], train_lang: str) -> None:
    """--train-lang: every selected task that fine-tunes can train in it (retrieval fine-tunes nothing)."""
    tuned = {name: trainable_languages(t) for name, t in tasks.items() if t.task != "retrieval"}
    if not tuned:
        raise FactoryError(f"--train-lang {train_lang}: {', '.join(tasks)} fine-tune(s) nothing (retrieval); leave "
                           "--train-lang out")  # fmt: skip
    cannot: dict[str, list[str]] = {}  # the languages a task can train in -> the tasks that cannot train in train_lang
    for name, ok in tuned.items():
        if ok is not None and train_lang not in ok:
            cannot.setdefault(", ".join(sorted(ok)), []).append(name)
    if cannot:
        shared = set.intersection(*(ok for ok in tuned.values() if ok is not None))
        raise FactoryError(
            f"--train-lang {train_lang}: {suite.name}'s "
            + "; ".join(f"{', '.join(names)} can fine-tune only on {langs}" for langs, names in cannot.items())
            + f"; the selected tasks accept {', '.join(sorted(shared)) or 'no language in common'} (leave "
            "--train-lang out for each task's own, or leave those tasks out of --tasks)"
        )


def task_key(request: Request) -> str:
    """What a task's results depend on: the task as the suite file defines it, its settings, languages, runs and
    control, the model's files and the local data's files (size and time: outputs.file_stats). A finished task is
    kept by a rerun only when its key is the same."""
    from factory.core.outputs import file_stats

    model = Path(request.model)
    what = {
        "task": repr(request.suite),
        "settings": repr(request.settings),
        "options": [request.data, request.train_language, request.languages, request.runs, request.control],
        "splits": list(request.splits),
        "model": file_stats(sorted(p for p in model.iterdir() if p.is_file())) if model.is_dir() else str(model),
        "revision": request.source.revision if request.source else None,
        "data": {} if request.data.startswith("hf:") or not request.data else file_stats([Path(request.data)]),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished_tasks(work: Path, requests: list[Request]) -> dict[str, dict[str, Any]]:
    """The reports of the tasks an earlier run of this suite finished in `work` with the same inputs (task_key):
    only read, so every process of a launch sees the same before the main one changes anything."""
    saved = _saved_keys(work)
    done = {}
    for r in requests:
        name = r.suite.name
        if saved.get(name) != task_key(r):
            if name in saved:
                log.info("%s: finished by an earlier run with other inputs; it runs again", name)
            continue
        try:
            done[name] = _as_task(json.loads((r.out / "results.json").read_text()), r.suite)
        except (OSError, ValueError):
            continue
    return done


def open_work(work: Path, done: dict[str, Any]) -> None:
    """The work folder with only the finished tasks kept in it: what a stopped run staged and tasks whose inputs
    changed or that are no longer selected are removed, so the folder that becomes OUT holds this run's alone."""
    work.mkdir(parents=True, exist_ok=True)
    for path in work.iterdir():
        if path.name in done or path.name == RESUME_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    _save_keys(work, {name: key for name, key in _saved_keys(work).items() if name in done})


def _saved_keys(work: Path) -> dict[str, str]:
    """resume.json's keys; none when it is missing or unreadable (every task then runs)."""
    try:
        keys = json.loads((work / RESUME_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return keys if isinstance(keys, dict) else {}


def _save_keys(work: Path, keys: dict[str, str]) -> None:
    """resume.json, replaced whole (a kill mid-write leaves the old one)."""
    from factory.core.outputs import write_whole

    write_whole(work / RESUME_FILE, json.dumps(keys, indent=1) + "\n")


def run_benchmark(request: Request) -> dict[str, Any]:
    from factory.core.outputs import check_output, replace_folder, work_folder
    from factory.model.folder import weights_fingerprint

    check_output(request.out, request.force)
    work = work_folder(request.out, "eval")
    requests = task_requests(request, work)
    done = finished_tasks(work, requests)
    todo = [r for r in requests if r.suite.name not in done]
    retrieval = [r for r in todo if r.suite.task == "retrieval"]
    for r in retrieval:  # checked now: a launch of several processes, misaligned files, a missing pivot (one
        from factory.evaluate.parallel import read_parallel  # line, nothing written, nothing fine-tuned)
        from factory.evaluate.retrieval import check_one_process

        names = ", ".join(x.suite.name for x in retrieval)
        check_one_process(f"run the benchmark without torchrun / accelerate launch, or leave {names} out of --tasks")
        read_parallel(r.data, "en", r.languages)
    prepared: dict[str, Prepared] = {r.suite.name: prepare(r, check_out=False) for r in todo if r not in retrieval}
    accelerator = make_accelerator(request.settings.precision) if prepared else None
    if accelerator is not None:
        check_launch(accelerator.num_processes, f"the {request.suite.name} benchmark")
    main = accelerator.is_main_process if accelerator is not None else is_main_process()
    if main:
        open_work(work, done)
    if accelerator is not None:
        accelerator.wait_for_everyone()  # every process has read what was finished before the work folder changes
    reports = {}
    for r in sorted(requests, key=lambda r: r.suite.task == "retrieval"):  # fine-tuned tasks first
        name = r.suite.name
        if name in done:
            log.info("%s: kept, finished by an earlier run of this suite with the same inputs", name)
            reports[name] = done[name]
            continue
        reports[name] = execute(prepared[name], accelerator) if name in prepared else _retrieval(r)
        if main:
            _save_keys(work, {**_saved_keys(work), name: task_key(r)})
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
    if main:
        from factory.evaluate.report import benchmark_chart, benchmark_markdown

        (work / "results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        (work / "results.md").write_text(benchmark_markdown(summary))
        benchmark_chart(summary, work / f"{request.suite.name}_summary.png")
        (work / RESUME_FILE).unlink()
        replace_folder(work, request.out)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return summary


def _retrieval(request: Request) -> dict[str, Any]:
    """BUCC/Tatoeba through `factory eval retrieval` (accuracy@1 against en, no fine-tuning), in the summary's shape:
    its two directions stand where a task's splits do."""
    from factory.core.options import Layer, resolve
    from factory.evaluate.config import RetrievalConfig
    from factory.evaluate.retrieval import run

    values = {"model": request.model, "data": request.data, "langs": request.languages, "out": request.out,
              "force": True, "control": request.control}  # fmt: skip
    return _as_task(run(resolve(RetrievalConfig, [Layer(values, "")])), request.suite)


def _as_task(report: dict[str, Any], task: Suite) -> dict[str, Any]:
    """A task's results.json as the summary reads it: retrieval's two directions stand where a task's splits do."""
    if task.task != "retrieval":
        return report
    return {**report, "task": "retrieval", "main_metric": "accuracy", "metrics": ["accuracy"]}
