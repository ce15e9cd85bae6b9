"""The model card of a derived model (`factory trim`, `factory transplant`): what it came from, read from its
manifest (factory.derive.manifest.DerivedManifest), never typed in.

The Hub's model tree (`base_model`, `base_model_relation: finetune`) comes from config.json's `factory.base_model`,
which trim and transplant write for a Hub base (factory.publish.card.base_model).
"""

from __future__ import annotations

from factory.core.markdown import markdown_table
from factory.derive.manifest import DerivedManifest, TransplantManifest, TrimManifest


def base_name(derived: DerivedManifest) -> str:
    """The base as a Markdown link (a Hub id) or a quoted folder name, with the commit when there is one."""
    base = derived.base
    if base.repo_id is None:
        return f"`{base.given}`"
    at = f" (revision `{base.revision[:12]}`)" if base.revision else ""
    return f"[{base.repo_id}](https://huggingface.co/{base.repo_id}){at}"


def derivation_phrase(derived: DerivedManifest | None) -> str:
    """The intro's ", trimmed from X" / ", moved from X onto a new vocabulary"."""
    if isinstance(derived, TrimManifest):
        return f", trimmed from {base_name(derived)}"
    if isinstance(derived, TransplantManifest):
        return f", moved from {base_name(derived)} onto a new vocabulary"
    return ""


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e6:.3f}M"


def derivation_section(derived: DerivedManifest | None, language_names: dict[str, str]) -> str:
    """## Derivation: what was done, the sizes before and after, and the figures the command measured."""
    if derived is None:
        return ""
    sizes = (
        f"{derived.pieces_before:,} -> {derived.pieces_after:,} SentencePiece pieces, {derived.rows_before:,} -> "
        f"{derived.rows_after:,} embedding rows, {_millions(derived.parameters_before['total'])} -> "
        f"{_millions(derived.parameters_after['total'])} parameters (backbone unchanged)"
    )
    if isinstance(derived, TrimManifest):
        names = ", ".join(language_names.get(code, code) for code in derived.languages)
        table = markdown_table(
            ["Language", "Words (first documents)", "Cut as before", "Pieces per word before", "After"],
            [[language_names.get(lang, lang), f"{r.words:,}", f"{100 * r.unchanged:.2f}%", f"{r.fertility_before:.3f}",
              f"{r.fertility_after:.3f}"] for lang, r in derived.per_language.items()],
        )  # fmt: skip
        return (
            f"## Derivation\n\nThis model is {base_name(derived)} trimmed to the pieces {names} uses ({sizes}). "
            "`factory trim` kept the pieces the language's text uses, the special, byte and user-defined pieces, and "
            "the single characters of its scripts, and removed the rest from the tokenizer and from every embedding "
            "table (the generator's too) with the same index. A text whose pieces were all kept is cut into the "
            "same pieces and gets the same hidden states as in the base model.\n\n" + "\n".join(table)
        )
    assert isinstance(derived, TransplantManifest)
    intro = f"## Derivation\n\nThis model is {base_name(derived)} moved onto another vocabulary ({sizes}). The "
    if not derived.new:  # a vocabulary within the base's (a trimmed one, the base's own): nothing to make
        return (
            f"{intro}{derived.shared:,} pieces of the new vocabulary are all pieces of the base's and kept their "
            "embedding rows, in the discriminator's table, the generator's and the MLM bias alike; the rest of the "
            "network is the base model's."
        )
    how = (
        f"the mean of the rows of the {derived.pieces_per_new:.2f} pieces (on average) the base tokenizer cuts it "
        "into (FVT)"
        if derived.pieces_per_new is not None
        else "a random row (the baseline)"
    )
    return (
        f"{intro}{derived.shared:,} pieces both vocabularies share kept their embedding rows; each of the "
        f"{derived.new:,} new pieces got {how}, in the discriminator's table, the generator's and the MLM bias alike. "
        "The rest of the network is the base model's. Until it is pre-trained further on text of the new vocabulary, "
        "its new rows are only an initialisation."
    )


def base_pretraining(derived: DerivedManifest) -> str:
    """The pre-training section of a derived model whose base has no factory manifest."""
    return (
        f"## Pre-training\n\nThe weights are those of {base_name(derived)}, apart from the vocabulary's rows "
        "(see Derivation); its own card says how it was pre-trained."
    )


def base_pretraining_note(derived: DerivedManifest | None) -> str:
    """The sentence before the pre-training table of a derived model: the run it reports is the base's."""
    if derived is None:
        return ""
    return f"How {base_name(derived)} was pre-trained (before the derivation above):\n\n"
