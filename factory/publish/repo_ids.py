"""The grammar of Hub repository ids: below factory.configs (PublishConfig checks --repo-id with the other
options) and factory.publish.hub (which publishes to it), so neither imports the other for it."""

from __future__ import annotations

import re

from factory.core.errors import FactoryError

REPO_ID = re.compile(r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?")


def parse_repo_id(text: str) -> str:
    """'org/name' as the Hub accepts it: letters, digits, '-', '_', '.'; no '--' or '..'; 96 chars a side."""
    if not REPO_ID.fullmatch(text) or "--" in text or ".." in text or text.endswith(".git"):
        raise FactoryError(
            f"--repo-id {text!r} is not a Hub repository id; write it as namespace/name, e.g. my-org/deberta-v3-xsmall "
            "(letters, digits, '-', '_', '.'; no '--' or '..')"
        )
    return text
