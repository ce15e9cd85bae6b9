"""The options of `factory publish` and the grammar of Hub repository ids (hub.py publishes to them).
No torch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.errors import FactoryError
from factory.core.options import option

REPO_ID = re.compile(r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?")


def parse_repo_id(text: str) -> str:
    """'org/name' as the Hub accepts it: letters, digits, '-', '_', '.'; no '--' or '..'; 96 chars a side."""
    if not REPO_ID.fullmatch(text) or "--" in text or ".." in text or text.endswith(".git"):
        raise FactoryError(
            f"--repo-id {text!r} is not a Hub repository id; write it as namespace/name, e.g. my-org/deberta-v3-xsmall "
            "(letters, digits, '-', '_', '.'; no '--' or '..')"
        )
    return text


# ---- publish -------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PublishConfig:
    """`factory publish DIR`: a staged HF folder with its model card, uploaded to the Hub."""

    SCHEMA: ClassVar[int] = 1

    model_dir: Path = option(help="The model folder to publish (or a Hub id org/name[@revision]).", cli=False)
    repo_id: str = option(help="Hub repository, namespace/name (e.g. my-org/deberta-v3-xsmall-pt).")
    private: bool = option(False, "Create the repository private (ignored if it exists).", secondary=False)
    revision: str | None = option(None, "Branch to commit to, created if needed (e.g. step-100000).")
    generator: Path | None = option(None, "Generator folder (or Hub id), uploaded as generator/ [default: the "
                                    "published generator files beside DIR, if any].")  # fmt: skip
    tokenizer: Path | None = option(None, "Folder (or Hub id) with spm.model + tokenizer files [default: DIR].")
    results: list[Path] = option([], "results.json of `factory eval` (repeatable).", repeat=True)
    language: list[str] = option([], "Language code for the card (repeatable) [default: from the manifests].",
                                 repeat=True)  # fmt: skip
    dataset: list[str] = option([], "Hub dataset id trained on, for the card (repeatable).", repeat=True)
    license: str = option("mit", "License id for the card.")
    staging: Path | None = option(None, "Folder to assemble the upload in [default: DIR-hub].")
    dry_run: bool = option(False, "Write and validate the staging folder; upload nothing.", secondary=False)

    def problems(self) -> list[str]:
        from factory.core.errors import FactoryError
        from factory.core.languages import check_languages

        problems = []
        try:
            parse_repo_id(self.repo_id)
        except FactoryError as e:
            problems.append(str(e))
        try:
            check_languages(self.language, "--language")  # the card's `language:` metadata: codes vocab knows
        except FactoryError as e:
            problems.append(str(e))
        return problems
