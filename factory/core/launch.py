"""What the launcher started (torchrun, `accelerate launch`, mpirun), read from the environment, and the check
that Accelerate sees the same processes.

A launcher says how many processes it started in WORLD_SIZE (torchrun, `accelerate launch`) or the MPI
variables. Accelerate joins them into one run only if it can: on a machine without a GPU it needs
`ACCELERATE_USE_CPU=true` (`accelerate launch --cpu`), else every process believes it is alone, trains the
whole batch and writes the same --out, and the run "succeeds" N times over. `check_launch` turns that into one
line before anything is written. `is_main_process` is what the CLI asks before it prints a summary line, so N
processes print what one prints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from factory.core.errors import ConfigError

# Accelerate's own list (accelerate/state.py), in the order it reads them
WORLD_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "WORLD_SIZE")
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
CPU_LAUNCH = "ACCELERATE_USE_CPU=true (or `accelerate launch --cpu`)"


def _first_int(names: tuple[str, ...], environ: Mapping[str, str]) -> int | None:
    for name in names:
        try:
            return int(environ[name])
        except (KeyError, ValueError):
            continue
    return None


def launched_processes(environ: Mapping[str, str] | None = None) -> int:
    """How many processes the launcher started (1 when no launcher is involved)."""
    return max(1, _first_int(WORLD_VARS, os.environ if environ is None else environ) or 1)


def is_main_process(environ: Mapping[str, str] | None = None) -> bool:
    """Rank 0, or no launcher at all: the process that prints summaries and logs above errors."""
    return (_first_int(RANK_VARS, os.environ if environ is None else environ) or 0) == 0


def check_launch(seen: int, what: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a launch whose processes Accelerate did not join (`seen` is its num_processes): one line that says
    why and how to launch, raised in every process before any of them writes."""
    environ = os.environ if environ is None else environ
    launched = launched_processes(environ)
    if launched <= 1 or seen == launched:
        return
    raise ConfigError(
        f"the launcher started {launched} processes but Accelerate joined {seen}: {_why_not(environ)}, so each "
        f"would run {what} alone and write the same output; on CPU launch with {CPU_LAUNCH}, on GPUs make them "
        "visible to every process"
    )


def _why_not(environ: Mapping[str, str]) -> str:
    """Why Accelerate did not see the processes, as far as the machine tells."""
    import torch

    if environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return "it was asked to use the CPU but did not start a process group (is torch.distributed available?)"
    if torch.version.cuda is None:
        return "this torch is a CPU build and ACCELERATE_USE_CPU is not set"
    if environ.get("CUDA_VISIBLE_DEVICES") == "":
        return "CUDA_VISIBLE_DEVICES is empty"
    if not torch.cuda.is_available():
        return "torch sees no GPU (torch.cuda.is_available() is False) and ACCELERATE_USE_CPU is not set"
    return f"torch sees {torch.cuda.device_count()} GPU(s) but Accelerate was not configured for them"
