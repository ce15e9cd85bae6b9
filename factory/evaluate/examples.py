"""What one evaluation example is, per task type: the data readers (data.py) make them, the task types
(tasks.py, qa.py) turn them into model inputs. Plain records with no behaviour, so every module can use them
without importing another's logic (imports go one way: tests/test_imports.py)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Example:
    """A sentence or pair with a label id (classification) or a number (regression)."""

    text_a: str
    text_b: str | None
    label: int | float
    id: str = ""
    where: str = dataclasses.field(default="", compare=False)  # "FILE line N": for messages about this example


@dataclasses.dataclass(frozen=True)
class TagExample:
    """A sentence as words, with one tag id per word (token classification)."""

    words: tuple[str, ...]
    tags: tuple[int, ...]
    id: str = ""


@dataclasses.dataclass(frozen=True)
class QAExample:
    """A question on a context with its gold answers (extractive QA)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...]  # empty: unanswerable (SQuAD 2.0)
    starts: tuple[int, ...]  # character offset of each answer in the context
    where: str = dataclasses.field(default="", compare=False)  # "FILE line N": for messages about this example
