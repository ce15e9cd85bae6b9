"""Fine-tune any task type's head on Accelerate (factory/evaluate/tasks.py gives the inputs, targets and loss),
then predict; the numbers do not depend on the number of processes.

Why they do not: every process builds the same global batch order from the run's seed; a global batch of
`batch_size` pairs is cut into micro-batches of `micro_batch_size`, and micro-batch j of a step runs on
process j % world (accumulating gradients when there are fewer processes than micro-batches). Each
micro-batch reseeds the dropout RNG from (seed, step, j), so it sees the same data *and* the same dropout
masks whichever process runs it. Prediction batches are likewise fixed globally and dealt round-robin; the
gathered predictions are put back in example order, so there are no duplicates from padding a shard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
from torch import nn

from factory.evaluate import sift
from factory.evaluate.config import FinetuneSettings
from factory.evaluate.tasks import Feature, TaskType


def collate(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad with id 0 ([PAD]) to the longest row: ids and attention mask, both (B, L)."""
    length = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def plan(n_train: int, settings: FinetuneSettings) -> Schedule:
    """Optimizer steps (incomplete last batch dropped, reshuffled each epoch) and the warm-up, capped on small data."""
    steps_per_epoch = n_train // settings.batch_size
    if steps_per_epoch == 0:
        from factory.core.errors import FactoryError

        raise FactoryError(
            f"the training set has {n_train} examples, fewer than one batch of {settings.batch_size}; "
            "lower it with --set batch_size=N (a multiple of micro_batch_size)"
        )
    total = max(1, math.ceil(steps_per_epoch * settings.epochs))
    warmup = min(settings.warmup_steps, int(settings.max_warmup_fraction * total))
    return Schedule(steps_per_epoch, total, warmup)


def linear_schedule(optimizer: torch.optim.Optimizer, schedule: Schedule) -> torch.optim.lr_scheduler.LambdaLR:
    """HF's get_linear_schedule_with_warmup: 0 -> lr over the warm-up, then linearly down to 0 (pre-training's
    schedule with its first step at 0: factory/core/lr_schedule.py)."""
    from factory.core.lr_schedule import linear_warmup_decay

    return linear_warmup_decay(optimizer, schedule.warmup_steps, schedule.total_steps, from_zero=True)


def _step_seed(seed: int, step: int, micro: int) -> int:
    return (seed * 1_000_003 + step * 4099 + micro) % (2**63 - 1)


def train(accelerator, model: nn.Module, features: list[Feature], task: TaskType, settings: FinetuneSettings,
          seed: int):  # fmt: skip
    """Fine-tune `model` in place on `features` with the task type's loss (and SiFT's when `settings.sift`);
    returns (the prepared model, mean loss over the last epoch's micro-batches, those of every process)."""
    from factory.core.progress import progress

    world, rank = accelerator.num_processes, accelerator.process_index
    micro_per_step = settings.batch_size // settings.micro_batch_size
    if micro_per_step % world:
        from factory.core.errors import FactoryError

        raise FactoryError(
            f"batch_size {settings.batch_size} = {micro_per_step} micro-batches of {settings.micro_batch_size} "
            f"cannot be shared by {world} processes; use --set micro_batch_size=N with N * {world} dividing it"
        )
    schedule = plan(len(features), settings)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, eps=settings.adam_epsilon, weight_decay=settings.weight_decay
    )
    scheduler = linear_schedule(optimizer, schedule)
    perturbation = sift.attach(model, settings.sift_learning_rate, settings.sift_init) if settings.sift else None
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    bar = progress(total=schedule.total_steps, desc=f"fine-tune (seed {seed})", main=accelerator.is_main_process)
    step, losses = 0, []
    while step < schedule.total_steps:
        epoch = step // schedule.steps_per_epoch
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed * 1009 + epoch))
        losses = []
        for start in range(0, schedule.steps_per_epoch * settings.batch_size, settings.batch_size):
            if step >= schedule.total_steps:
                break
            batch = order[start : start + settings.batch_size].view(micro_per_step, settings.micro_batch_size)
            mine = list(range(rank, micro_per_step, world))  # micro-batches this process runs
            for k, micro in enumerate(mine):
                rows = [features[i] for i in batch[micro].tolist()]
                ids, mask = (t.to(accelerator.device) for t in collate([f.ids for f in rows]))
                torch.manual_seed(_step_seed(seed, step, micro))  # same dropout masks on any process count
                last = k == len(mine) - 1  # gradients are all-reduced once per step, on the last micro-batch
                with contextlib.nullcontext() if last else accelerator.no_sync(model):
                    loss = step_loss(accelerator, model, task, ids, mask, [f.target for f in rows], settings,
                                     perturbation)  # fmt: skip
                    # DDP averages over `world`; scaling by world / micro_per_step makes it the mean over the batch
                    accelerator.backward(loss * world / micro_per_step)
                losses.append(loss.item())
            if settings.max_grad_norm > 0:  # after the all-reduce: every process clips the same gradient
                accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses) / len(losses):.3f}")
    bar.close()
    if world > 1:  # every process's micro-batches, summed in one order: the same figure on any process count
        from accelerate.utils import gather_object

        losses = gather_object(losses)
    losses = sorted(losses)
    return model, (sum(losses) / len(losses) if losses else float("nan"))


def step_loss(accelerator, model: nn.Module, task: TaskType, ids: torch.Tensor, mask: torch.Tensor, targets: list,
              settings: FinetuneSettings, perturbation: sift.Perturbation | None) -> torch.Tensor:  # fmt: skip
    """One micro-batch's training loss: the task type's, plus sift_lambda x SiFT's adversarial term when
    `perturbation` is attached (bench/speed/eval_speed.py times exactly this, then backward and the optimizer step)."""
    with accelerator.autocast():
        logits = model(ids, mask).logits
    loss = task.loss(logits, targets)
    if perturbation is not None:
        loss = loss + settings.sift_lambda * _sift_loss(accelerator, model, perturbation, task, logits, ids, mask)
    return loss


def _sift_loss(accelerator, model, perturbation, task: TaskType, logits, ids, mask) -> torch.Tensor:
    """SiFT's adversarial term for this micro-batch: the perturbed passes run on the unwrapped module, whose
    weights the DDP wrapper's backward still reduces (they are the same parameters)."""
    inner = accelerator.unwrap_model(model)

    def forward() -> torch.Tensor:
        with accelerator.autocast():
            return inner(ids, mask).logits

    return sift.adversarial_loss(forward, inner, perturbation, logits, task.sift_view, mse=task.name == "regression")


@torch.no_grad()
def predict(accelerator, model: nn.Module, ids: list[list[int]], batch_size: int, desc: str = "", *,
            output) -> list:  # fmt: skip
    """One output per row, in row order (`output(logits_row, length)`, the task's); batches fixed by length and
    dealt round-robin to processes."""
    from accelerate.utils import gather_object

    from factory.core.progress import progress

    model = accelerator.unwrap_model(model).eval()
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))  # similar lengths together: less padding
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    mine = batches[accelerator.process_index :: accelerator.num_processes]
    out: list[tuple[int, object]] = []
    for batch in progress(mine, desc=desc, main=accelerator.is_main_process, leave=False):
        x, mask = collate([ids[i] for i in batch])
        with accelerator.autocast():
            logits = model(x.to(accelerator.device), mask.to(accelerator.device)).logits.float().cpu()
        out.extend((i, output(logits[row], len(ids[i]))) for row, i in enumerate(batch))
    gathered = gather_object(out) if accelerator.num_processes > 1 else out
    predictions = dict(gathered)
    return [predictions[i] for i in range(len(ids))]
