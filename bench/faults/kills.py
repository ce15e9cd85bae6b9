"""Kill -9 loops: a run killed at random moments, restarted each time, must end exactly where a straight run ends.

    python -m bench.faults.kills --data /tmp/real --out /tmp/kills               # both loops, 20 kills each
    python -m bench.faults.kills --data /tmp/real --out /tmp/kills --only pretrain --kills 20 --seed 1

pretrain: a debug-size RTD run on real text with --save-every 5 (and the defaults' --keep 3). The killed copy is
started with `--resume auto` (the same command every time: a job script that is preempted), killed with SIGKILL
after a random delay, restarted, and so on until it has been killed `--kills` times; then it runs to the end.
Compared with the straight run: every train.jsonl record's losses (max |difference|) and the final checkpoint's
and the exported discriminator's weights (max |difference|).

shards: `factory shards` of every language of --data the language filter knows, with cleaning, the language
filter and de-duplication on (worker processes), checkpointing every 0.2 s; killed (the whole process group)
after random delays and rerun with the same command until it has been killed `--kills` times, then to the end;
every shard file compared byte for byte with a build that was never interrupted, and the manifests' counts.

`--data` is the folder `../shared/data/real_text.py` writes (LANG.txt, one paragraph per line). The delays are
uniform between --min-s and --max-s and seeded, so a loop can be replayed; a kill that lands after the process
has already finished does not count, so the run is made long enough for every kill to land mid-run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.cli import add_real_text, make_parser

ROOT = Path(__file__).resolve().parents[2]
LOSSES = ("mlm_loss", "rtd_loss", "rtd_accuracy", "mlm_accuracy", "grad_norm")


def factory(*args, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "factory", "-q", *map(str, args)], cwd=ROOT, env=env or environ(),
                          capture_output=True, text=True)  # fmt: skip
    if check and done.returncode != 0:
        raise SystemExit(f"factory {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return done


def environ(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", **extra}


def kill_loop(command: list[str], kills: int, rng: random.Random, low: float, high: float, env: dict) -> dict:
    """Start `command`, SIGKILL its process group after a random delay, repeat until `kills` kills landed; then
    let it finish. Returns the delays and how each session ended."""
    delays, landed, sessions = [], 0, 0
    while True:
        sessions += 1
        proc = subprocess.Popen([sys.executable, "-m", "factory", "-q", *map(str, command)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        if landed == kills:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"the last session failed ({proc.returncode}):\n{err.decode()[-3000:]}")
            return {"kills": landed, "sessions": sessions, "delays_s": delays}
        delay = rng.uniform(low, high)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            landed += 1
            delays.append(round(delay, 2))
            print(f"  kill {landed}/{kills} after {delay:.2f} s", flush=True)
            continue
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"a session failed on its own ({proc.returncode}):\n{err[-3000:]}")
        raise SystemExit(f"the run finished after {landed} kills; make it longer (more steps / more text)")


def max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys(), (a, b)
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def pretrain_loop(data: Path, out: Path, kills: int, rng: random.Random, low: float, high: float, steps: int) -> dict:
    vocab, shards = out / "vocab", out / "shards"
    langs = ("en", "de", "pt")
    corpus = [f"{lang}={data / f'{lang}.txt'}" for lang in langs]
    if not (vocab / "spm.model").is_file():
        factory("vocab", "--langs", ",".join(langs), "--size", "4000", *sum((["--corpus", c] for c in corpus), []),
                "--max-sentences", "30000", "--out", vocab)  # fmt: skip
    if not (shards / "factory.json").is_file():
        factory("shards", "--vocab", vocab, *sum((["--corpus", c] for c in corpus), []), "--seq-len", "128",
                "--no-langid", "--out", shards)  # fmt: skip
    run = ["pretrain", "--preset", "debug", "--vocab", vocab, "--shards", shards, "--batch", "16",
           "--max-steps", steps, "--save-every", "5", "--log-every", "1", "--mixed-precision", "no"]  # fmt: skip
    straight, killed = out / "straight", out / "killed"
    t0 = time.perf_counter()
    factory(*run, "--out", straight, "--force")
    straight_s = time.perf_counter() - t0
    print(f"pretrain: straight run {steps} steps in {straight_s:.1f} s; now {kills} kills", flush=True)
    import shutil

    shutil.rmtree(killed, ignore_errors=True)
    loop = kill_loop([*run, "--out", killed, "--resume", "auto"], kills, rng, low, high, environ())
    a, b = records(straight), records(killed)
    assert [r["step"] for r in a] == [r["step"] for r in b], "the killed run logged other steps"
    loss_diff = max(abs(ra[k] - rb[k]) for ra, rb in zip(a, b, strict=True) for k in LOSSES)
    last = f"checkpoints/step-{steps:08d}/model.safetensors"
    return {
        "steps": steps, "straight_s": round(straight_s, 1), **loop,
        "records": len(b), "max_loss_diff": loss_diff,
        "max_checkpoint_weight_diff": max_weight_diff(straight / last, killed / last),
        "max_discriminator_weight_diff": max_weight_diff(straight / "discriminator" / "model.safetensors",
                                                         killed / "discriminator" / "model.safetensors"),
    }  # fmt: skip


def shards_loop(data: Path, out: Path, kills: int, rng: random.Random, low: float, high: float) -> dict:
    from factory.corpus.langid import known_codes

    filter_name = "fasttext"  # the default filter (the loop in bench/RESULTS.md ran with langdetect, then the default)
    langs = [p.stem for p in sorted(data.glob("*.txt")) if p.stem in known_codes(filter_name)]
    vocab = out / "shards-vocab"
    if not (vocab / "spm.model").is_file():
        factory("vocab", "--langs", ",".join(langs), "--size", "8000", "--max-sentences", "60000", "--out", vocab,
                *sum((["--corpus", f"{lang}={data / f'{lang}.txt'}"] for lang in langs), []))  # fmt: skip
    build = ["shards", "--vocab", vocab, *sum((["--corpus", f"{lang}={data / f'{lang}.txt'}"] for lang in langs), []),
             "--seq-len", "128", "--rows-per-shard", "500", "--num-proc", "2"]  # fmt: skip
    env = environ(FACTORY_SHARDS_CHECKPOINT_S="0.2")
    straight, killed = out / "shards-straight", out / "shards-killed"
    t0 = time.perf_counter()
    factory(*build, "--out", straight, "--force", env=env)
    straight_s = time.perf_counter() - t0
    print(f"shards: straight build in {straight_s:.1f} s; now {kills} kills", flush=True)
    import shutil

    shutil.rmtree(killed, ignore_errors=True)
    for stale in out.glob(".shards-killed*"):
        shutil.rmtree(stale, ignore_errors=True)
    loop = kill_loop([*build, "--out", killed], kills, rng, low, high, env)
    names = sorted(p.name for p in straight.glob("shard-*.arrow"))
    same = names == sorted(p.name for p in killed.glob("shard-*.arrow"))
    identical = same and all((straight / n).read_bytes() == (killed / n).read_bytes() for n in names)
    ours, theirs = (json.loads((f / "factory.json").read_text()) for f in (killed, straight))
    return {
        "straight_s": round(straight_s, 1), **loop, "files": len(names), "bytes_identical": identical,
        "counts_equal": ours["counts"] == theirs["counts"] and ours["per_language"] == theirs["per_language"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__spec__, __doc__)
    add_real_text(parser)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", choices=("pretrain", "shards"))
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=400, help="pre-training steps (long enough for every kill)")
    parser.add_argument("--min-s", type=float, default=2.0, help="shortest delay before a kill (start-up included)")
    parser.add_argument("--max-s", type=float, default=9.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    saved = args.out / "kills.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}  # an --only run keeps the other loop's
    if args.only in (None, "pretrain"):
        results["pretrain"] = pretrain_loop(args.data, args.out, args.kills, rng, args.min_s, args.max_s, args.steps)
        print(json.dumps(results["pretrain"]), flush=True)
    if args.only in (None, "shards"):
        results["shards"] = shards_loop(args.data, args.out, args.kills, rng, args.min_s, args.max_s)
        print(json.dumps(results["shards"]), flush=True)
    saved.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
