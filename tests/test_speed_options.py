"""The speed options change time and memory, never the numbers: compiled layers and gradient checkpointing
give the same loss and gradients as the plain eager model."""

import copy

import pytest
import torch

from factory.model import build_model
from factory.model.encoder import compile_layers
from tests.conftest import micro_config, padded_batch


def _loss_and_grads(model, ids, mask, seed: int = 0):
    torch.manual_seed(seed)  # the same dropout masks for both runs
    labels = torch.where(mask.bool(), ids, -100)
    loss = torch.nn.functional.cross_entropy(model(ids, mask).logits.flatten(0, 1), labels.flatten())
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def _assert_same(a, b, tol: float):
    assert abs(a[0] - b[0]) <= tol
    assert a[1].keys() == b[1].keys() and a[1]
    for name in a[1]:
        assert torch.allclose(a[1][name], b[1][name], atol=tol), name


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_layers_match_eager(backend):
    """fullgraph compile of every layer (a graph break raises), forward and backward, padded batches and
    a length beyond the position buckets; inductor generates and runs real CPU kernels."""
    torch._dynamo.reset()
    config = micro_config("xsmall", layers=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    eager = build_model(config, "mlm", seed=3).train()
    compiled = compile_layers(copy.deepcopy(eager), backend=backend)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints unaffected
    lengths = (300,) if backend == "inductor" else (129, 300)
    for length in lengths:
        ids, mask = padded_batch(config.vocab_size, length, seed=length)
        _assert_same(_loss_and_grads(compiled, ids, mask), _loss_and_grads(eager, ids, mask), tol=1e-5)


def test_gradient_checkpointing_matches_plain_backward():
    """Recomputed activations (dropout on: the recomputation replays the same RNG) give the same gradients."""
    config = micro_config("debug", layers=3)
    plain = build_model(config, "mlm", seed=4).train()
    recomputed = copy.deepcopy(plain)
    recomputed.deberta.encoder.gradient_checkpointing = True
    ids, mask = padded_batch(config.vocab_size, 64)
    _assert_same(_loss_and_grads(recomputed, ids, mask), _loss_and_grads(plain, ids, mask), tol=1e-6)
