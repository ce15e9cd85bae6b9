"""SiFT, scale-invariant fine-tuning (DeBERTa [V1] section 3.3; the official DeBERTa/sift/sift.py).

Virtual adversarial training on the *normalised* word embeddings, so the perturbation's size means the same for
every model and every token: a LayerNorm without weights is put in front of the embeddings' own LayerNorm
(a forward pre-hook on `deberta.embeddings.LayerNorm`, as the official `hook_sift_layer` does), and the
perturbation is added to its output. Each training step then:
1. draws delta ~ N(0, sift_init²), clamped to ±2·sift_init, and runs the model on normalised + delta with every
   weight frozen; the symmetric KL between these logits and the clean ones (detached) is back-propagated to
   delta alone;
2. moves delta one step up that gradient, scaled per position by its largest entry:
   delta += sift_learning_rate · g / (1e-6 + max|g|);
3. runs the model once more on normalised + delta (weights trainable again) and adds sift_lambda × the mean
   symmetric KL between these logits and the clean ones to the task loss.
The symmetric KL is the official's: KL(p_clean‖p_adv) + KL(p_adv‖p_clean) with each side's probabilities held
constant, i.e. two cross-entropies. A regression head has one output, whose softmax is constant, so there the
official `mse` loss is used instead (docs/evaluation.md#sift). Off (the default), nothing is hooked and the
training step is exactly the plain one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-7  # the official perturbation layer's LayerNorm epsilon


class Perturbation:
    """The pre-hook: in clean mode it normalises and remembers the input; in adversarial mode it returns the
    remembered input plus delta."""

    def __init__(self, hidden_size: int, learning_rate: float, init: float):
        self.hidden_size, self.learning_rate, self.init = hidden_size, learning_rate, init
        self.adversarial = False
        self.input: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]):
        if not self.adversarial:
            self.input = F.layer_norm(inputs[0], (self.hidden_size,), eps=LN_EPS)
            return (self.input,)
        if self.delta is None:
            self.delta = self._initial().requires_grad_(True)
        return ((self.input.detach().float() + self.delta).to(self.input.dtype),)

    def _initial(self) -> torch.Tensor:
        noise = torch.empty(self.input.shape, device=self.input.device, dtype=torch.float32).normal_(0, self.init)
        return noise.clamp(-2 * self.init, 2 * self.init)

    def ascend(self) -> bool:
        """One normalised gradient step on delta; False (delta kept) when the gradient is not finite."""
        grad, self.delta.grad = self.delta.grad, None
        if grad is None or not torch.isfinite(grad.norm()):
            self.delta = self.delta.detach()
            return False
        step = grad / (1e-6 + grad.abs().amax(-1, keepdim=True))
        self.delta = (self.delta + self.learning_rate * step).detach()
        return True


def attach(model: nn.Module, learning_rate: float, init: float) -> Perturbation:
    """Hook a Perturbation in front of the encoder's embedding LayerNorm (`model` unwrapped from DDP)."""
    perturbation = Perturbation(model.config.hidden_size, learning_rate, init)
    model.deberta.embeddings.LayerNorm.register_forward_pre_hook(perturbation)
    return perturbation


def symmetric_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per row: CE(p_target, logits) + CE(p_logits, target), each side's probabilities held constant."""
    student, teacher = F.log_softmax(logits.float(), -1), F.log_softmax(target.float(), -1)
    return (teacher.exp().detach() * -student).sum(-1) + (student.exp().detach() * -teacher).sum(-1)


def adversarial_loss(
    forward: Callable[[], torch.Tensor],
    model: nn.Module,
    perturbation: Perturbation,
    clean: torch.Tensor,
    view: Callable[[torch.Tensor], torch.Tensor],
    mse: bool = False,
) -> torch.Tensor:
    """Steps 1-3 of the module docstring; `forward()` reruns the model on the same batch, `view` reshapes logits
    into (rows, classes) distributions (QA: one row per start/end and sequence)."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if mse:
            return F.mse_loss(a.float().reshape(-1), b.float().reshape(-1))
        return symmetric_kl(view(a), view(b))

    trainable = [p for p in model.parameters() if p.requires_grad]
    perturbation.adversarial = True
    try:
        for p in trainable:
            p.requires_grad_(False)
        distance(forward(), clean.detach()).sum().backward()  # gradients reach delta only
        perturbation.ascend()
        for p in trainable:
            p.requires_grad_(True)
        return distance(forward(), clean).mean()
    finally:
        for p in trainable:
            p.requires_grad_(True)
        perturbation.adversarial, perturbation.delta = False, None
