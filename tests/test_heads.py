"""The evaluation heads in `transformers`' layout: token classification, QA, regression; both ways, ≤ 1e-4."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from factory.model import build_model, load_model, save_model
from tests.conftest import micro_config, padded_batch
from tests.test_parity import TOL


def _compare(ours, theirs, ids, mask):
    """Max abs differences of the last hidden state and the logits (QA: start and end stacked as ours are)."""
    ours.eval()
    with torch.no_grad():
        a = ours(ids, attention_mask=mask)
        b = theirs(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    logits = torch.stack([b.start_logits, b.end_logits], -1) if hasattr(b, "start_logits") else b.logits
    return (a.last_hidden_state - b.hidden_states[-1]).abs().max().item(), (a.logits - logits).abs().max().item()


CASES = [  # our head, the transformers class, config overrides
    ("tokens", transformers.DebertaV2ForTokenClassification, {"labels": ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")}),
    ("qa", transformers.DebertaV2ForQuestionAnswering, {}),
    ("cls", transformers.DebertaV2ForSequenceClassification, {"labels": ("LABEL_0",), "problem_type": "regression"}),
]


@pytest.mark.parametrize("head, hf_class, overrides", CASES, ids=[c[0] for c in CASES])
def test_head_both_ways(head, hf_class, overrides, tmp_path):
    config = micro_config("xsmall", **overrides)
    ours = build_model(config, head, seed=5)
    save_model(ours, tmp_path / "ours")
    theirs, info = hf_class.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not any(info.values()), info  # every weight where transformers expects it
    written = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert written["architectures"] == [hf_class.__name__]
    assert theirs.config.num_labels == config.num_labels and theirs.config.problem_type == config.problem_type
    for length in (9, 300):
        ids, mask = padded_batch(config.vocab_size, length, seed=length)
        hidden, logits = _compare(ours, theirs.eval(), ids, mask)
        assert hidden <= TOL and logits <= TOL, (head, length, hidden, logits)
    theirs.save_pretrained(tmp_path / "theirs")
    back = load_model(tmp_path / "theirs")  # the head is recognised from the weights alone
    assert type(back) is type(ours) and back.config.problem_type == config.problem_type
    hidden, logits = _compare(back, theirs, ids, mask)
    assert hidden <= TOL and logits <= TOL


def test_regression_loss_is_transformers_mse(tmp_path):
    config = micro_config("xsmall", labels=("LABEL_0",), problem_type="regression")
    ours = build_model(config, "cls", seed=6).eval()
    save_model(ours, tmp_path)
    theirs = transformers.DebertaV2ForSequenceClassification.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch(config.vocab_size, 17)
    target = torch.tensor([0.5, 3.2, 4.9])
    with torch.no_grad():
        ours_loss = torch.nn.functional.mse_loss(ours(ids, mask).logits.squeeze(-1), target)
        theirs_loss = theirs(input_ids=ids, attention_mask=mask, labels=target).loss
    assert abs(ours_loss.item() - theirs_loss.item()) <= TOL


def test_token_head_takes_a_new_label_set(tmp_path):
    """A token-classification folder fine-tuned on one tag set loads with another: a fresh classifier."""
    config = micro_config("xsmall", labels=("O", "B-PER", "I-PER"))
    save_model(build_model(config, "tokens", seed=7), tmp_path)
    model = load_model(tmp_path, head="tokens", labels=("ADJ", "NOUN", "VERB", "X"))
    assert model.classifier.out_features == 4 and model.config.labels[1] == "NOUN"
    with pytest.raises(ValueError, match="a QA head has 2 outputs"):
        build_model(micro_config("xsmall", labels=("a", "b", "c")), "qa")
