"""Zero-shot cross-lingual evaluation: fine-tune on one language, test on all (XNLI, PAWS-X, any files).

Modules, in the order a run uses them: `suite` (eval/*.yaml: languages, settings, references), `data`
(local files or `datasets`), `finetune` (Accelerate loop + prediction), `report` (numbers, files),
`runner` (one command end to end), `demo_nli` (the generator of recipes/demo/nli/). `control` is the
random-init control of `--control random`, used by `runner` and by `retrieval` (parallel-sentence retrieval,
no fine-tuning; `parallel` reads its data). docs/retrieval.md states both protocols. `config` holds the
commands' options and the fine-tuning settings, `manifest` the schema of factory.json.

An output folder holds:
    results.json              the schema below
    results.md                our accuracy per language beside the suite's references
    {suite}_accuracy.png      per-language bar chart (validation accuracy, references beside)
    predictions/{lang}.{split}.jsonl   {"index", "text_a", "text_b", "label" (gold id),
                              "predictions" (predicted id per run), "predicted_label" (name, run 1)}
    factory.json              the manifest (command arguments, versions, model fingerprint)

results.json (schema "factory.eval/v1"; the model card of the publishing step reads it):
    {"schema": "factory.eval/v1", "suite": "xnli", "model": "<path>", "train_language": "en",
     "model_fingerprint": "<sha256 prefix of the weights evaluated>",  # publish takes only its model's results
     "languages": ["en", ...],                       # evaluated, in the suite's order
     "runs": N, "seeds": [42, 43, ...],              # run k uses seed settings.seed + k
     "settings": {"learning_rate", "epochs", "batch_size", "max_length", "warmup" (steps used),
                  "total_steps", ...},               # the resolved settings of the run
     "results": {"<lang>": {"validation": {"accuracy": <percent, mean over runs>, "std": <percent, sample
                                          std over runs; 0 for one run>, "per_run": [...], "n": <examples>},
                            "test": {...}}},
     "average": {"validation": {"accuracy": .., "std": ..}, "test": {...}},   # per run over languages, then
                                                                              # mean/std over runs
     "references": {"mDeBERTa-v3-base": {"en": 88.2, ..., "avg": 79.8}, "XLM-R-base": {...}}}
                                                     # published zero-shot dev accuracy, from eval/<suite>.yaml
With `--control random` also: "control" (shaped as "results"), "control_average" (as "average"),
"control_model" ({"kind": "random", "seed", "init", "config", "tokenizer", "final_train_loss"}) and
"gain" ({"<lang>" | "avg": {"<split>": points, model - control}}); the control's predictions are in
predictions/control/.

`factory eval retrieval` writes the same schema with suite "retrieval": "pivot", "languages" (the others),
"data", "protocol" (layer, layer_index, depth, pooling, centre, similarity, metric, candidates, ...),
"results": {"<lang>": {"to_pivot" | "from_pivot": {"accuracy", "n" (pool size), "chance"}}},
"average": {"to_pivot": {"accuracy"}, "from_pivot": {...}}, and the control keys as above; the chart is
retrieval_accuracy.png and there are no predictions.
"""

from factory.evaluate.config import FinetuneSettings
from factory.evaluate.suite import Suite, load_suite

__all__ = ["FinetuneSettings", "Suite", "load_suite"]
