"""The small NLI set in `recipes/demo/nli/`: template sentences and their translations, written by code.

XNLI itself needs a download; this set lets the offline demo and the tests run the whole `factory eval
xnli` path. Every pair exists in English, Spanish, German and Russian (the same item rendered through a
hand-written lexicon), so it is a miniature of XNLI's "translations of the same pairs" design.

The classes are learnable from tokens, so that a tiny model fine-tuned on English beats chance in seconds:
    premise        "The teacher reads a book in the park."
    entailment     repeats part of the premise: "The teacher reads a book." / "The teacher is in the park."
    neutral        adds an unrelated reason:    "The teacher reads a book because it is late."
    contradiction  negates the premise:         "The teacher does not read a book."

Regenerate (the committed files must equal this output; a test checks it):
    python -m factory.evaluate.demo_nli recipes/demo/nli
"""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path

log = logging.getLogger(__name__)

LANGUAGES = ("en", "es", "de", "ru")
SPLIT_SIZES = {"train": 300, "validation": 90, "test": 90}  # pairs per language
SEED = 20240501

# Each entry: one meaning in every language. Present tense everywhere, so Russian verbs need no gender.
SUBJECTS = [
    {"en": "The teacher", "es": "El profesor", "de": "Der Lehrer", "ru": "Учитель"},
    {"en": "The doctor", "es": "El médico", "de": "Der Arzt", "ru": "Врач"},
    {"en": "My brother", "es": "Mi hermano", "de": "Mein Bruder", "ru": "Мой брат"},
    {"en": "The old man", "es": "El anciano", "de": "Der alte Mann", "ru": "Старик"},
    {"en": "The student", "es": "El estudiante", "de": "Der Student", "ru": "Студент"},
    {"en": "Our neighbour", "es": "Nuestro vecino", "de": "Unser Nachbar", "ru": "Наш сосед"},
    {"en": "The driver", "es": "El conductor", "de": "Der Fahrer", "ru": "Водитель"},
    {"en": "The cook", "es": "El cocinero", "de": "Der Koch", "ru": "Повар"},
    {"en": "The boy", "es": "El niño", "de": "Der Junge", "ru": "Мальчик"},
    {"en": "My father", "es": "Mi padre", "de": "Mein Vater", "ru": "Мой отец"},
]

# (affirmative, negated) verb phrases.
VERB_PHRASES = [
    {
        "en": ("reads a book", "does not read a book"),
        "es": ("lee un libro", "no lee un libro"),
        "de": ("liest ein Buch", "liest kein Buch"),
        "ru": ("читает книгу", "не читает книгу"),
    },
    {
        "en": ("drinks coffee", "does not drink coffee"),
        "es": ("bebe café", "no bebe café"),
        "de": ("trinkt Kaffee", "trinkt keinen Kaffee"),
        "ru": ("пьёт кофе", "не пьёт кофе"),
    },
    {
        "en": ("writes a letter", "does not write a letter"),
        "es": ("escribe una carta", "no escribe una carta"),
        "de": ("schreibt einen Brief", "schreibt keinen Brief"),
        "ru": ("пишет письмо", "не пишет письмо"),
    },
    {
        "en": ("eats an apple", "does not eat an apple"),
        "es": ("come una manzana", "no come una manzana"),
        "de": ("isst einen Apfel", "isst keinen Apfel"),
        "ru": ("ест яблоко", "не ест яблоко"),
    },
    {
        "en": ("plays the guitar", "does not play the guitar"),
        "es": ("toca la guitarra", "no toca la guitarra"),
        "de": ("spielt Gitarre", "spielt nicht Gitarre"),
        "ru": ("играет на гитаре", "не играет на гитаре"),
    },
    {
        "en": ("watches the birds", "does not watch the birds"),
        "es": ("mira los pájaros", "no mira los pájaros"),
        "de": ("beobachtet die Vögel", "beobachtet die Vögel nicht"),
        "ru": ("смотрит на птиц", "не смотрит на птиц"),
    },
    {
        "en": ("sings a song", "does not sing a song"),
        "es": ("canta una canción", "no canta una canción"),
        "de": ("singt ein Lied", "singt kein Lied"),
        "ru": ("поёт песню", "не поёт песню"),
    },
    {
        "en": ("cleans the table", "does not clean the table"),
        "es": ("limpia la mesa", "no limpia la mesa"),
        "de": ("putzt den Tisch", "putzt den Tisch nicht"),
        "ru": ("моет стол", "не моет стол"),
    },
    {
        "en": ("waits for the bus", "does not wait for the bus"),
        "es": ("espera el autobús", "no espera el autobús"),
        "de": ("wartet auf den Bus", "wartet nicht auf den Bus"),
        "ru": ("ждёт автобус", "не ждёт автобус"),
    },
    {
        "en": ("paints a picture", "does not paint a picture"),
        "es": ("pinta un cuadro", "no pinta un cuadro"),
        "de": ("malt ein Bild", "malt kein Bild"),
        "ru": ("рисует картину", "не рисует картину"),
    },
]

# (place phrase, "is in the place" predicate).
PLACES = [
    {
        "en": ("in the park", "is in the park"),
        "es": ("en el parque", "está en el parque"),
        "de": ("im Park", "ist im Park"),
        "ru": ("в парке", "в парке"),
    },
    {
        "en": ("in the kitchen", "is in the kitchen"),
        "es": ("en la cocina", "está en la cocina"),
        "de": ("in der Küche", "ist in der Küche"),
        "ru": ("на кухне", "на кухне"),
    },
    {
        "en": ("at the station", "is at the station"),
        "es": ("en la estación", "está en la estación"),
        "de": ("am Bahnhof", "ist am Bahnhof"),
        "ru": ("на вокзале", "на вокзале"),
    },
    {
        "en": ("in the garden", "is in the garden"),
        "es": ("en el jardín", "está en el jardín"),
        "de": ("im Garten", "ist im Garten"),
        "ru": ("в саду", "в саду"),
    },
    {
        "en": ("at school", "is at school"),
        "es": ("en la escuela", "está en la escuela"),
        "de": ("in der Schule", "ist in der Schule"),
        "ru": ("в школе", "в школе"),
    },
    {
        "en": ("by the river", "is by the river"),
        "es": ("junto al río", "está junto al río"),
        "de": ("am Fluss", "ist am Fluss"),
        "ru": ("у реки", "у реки"),
    },
]

REASONS = [
    {"en": "because it is late", "es": "porque es tarde", "de": ", weil es spät ist", "ru": ", потому что уже поздно"},
    {"en": "because it is raining", "es": "porque llueve", "de": ", weil es regnet", "ru": ", потому что идёт дождь"},
    {
        "en": "because the day is long",
        "es": "porque el día es largo",
        "de": ", weil der Tag lang ist",
        "ru": ", потому что день длинный",
    },  # fmt: skip
    {
        "en": "because he is happy",
        "es": "porque está feliz",
        "de": ", weil er glücklich ist",
        "ru": ", потому что он счастлив",
    },  # fmt: skip
    {
        "en": "because the weather is cold",
        "es": "porque hace frío",
        "de": ", weil das Wetter kalt ist",
        "ru": ", потому что холодно",
    },  # fmt: skip
]

LABELS = ("entailment", "neutral", "contradiction")  # XNLI ids 0, 1, 2


def render(item: dict[str, int], lang: str) -> tuple[str, str]:
    """One abstract item (indices into the lexicon + label + variant) -> (premise, hypothesis) in `lang`."""
    subject = SUBJECTS[item["subject"]][lang]
    verb, negated = VERB_PHRASES[item["verb"]][lang]
    place, is_there = PLACES[item["place"]][lang]
    premise = f"{subject} {verb} {place}."
    label, variant = LABELS[item["label"]], item["variant"]
    if label == "entailment":
        hypothesis = f"{subject} {verb}." if variant == 0 else f"{subject} {is_there}."
    elif label == "neutral":
        reason = REASONS[item["reason"]][lang]
        hypothesis = f"{subject} {verb}{'' if reason.startswith(',') else ' '}{reason}."  # de/ru: comma
    else:
        hypothesis = f"{subject} {negated}." if variant == 0 else f"{subject} {negated} {place}."
    return premise, hypothesis


def build_items() -> dict[str, list[dict[str, int]]]:
    """Abstract items per split: distinct premises, labels balanced and shuffled, reproducible from SEED."""
    rng = random.Random(SEED)
    premises = [(s, v, p) for s in range(len(SUBJECTS)) for v in range(len(VERB_PHRASES)) for p in range(len(PLACES))]
    rng.shuffle(premises)  # 600 distinct premises; each split gets its own
    out: dict[str, list[dict[str, int]]] = {}
    start = 0
    for split, size in SPLIT_SIZES.items():
        items = []
        for i, (s, v, p) in enumerate(premises[start : start + size]):
            label = i % 3
            items.append(
                {
                    "subject": s,
                    "verb": v,
                    "place": p,
                    "label": label,
                    "variant": rng.randrange(2),
                    "reason": rng.randrange(len(REASONS)),
                }  # fmt: skip
            )
        rng.shuffle(items)
        out[split] = items
        start += size
    return out


def write(folder: Path) -> list[Path]:
    """Write `{split}.jsonl` (every language, XNLI columns) into `folder`; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for split, items in build_items().items():
        lines = []
        for lang in LANGUAGES:
            for item in items:
                premise, hypothesis = render(item, lang)
                row = {"premise": premise, "hypothesis": hypothesis, "label": item["label"], "language": lang}
                lines.append(json.dumps(row, ensure_ascii=False))
        path = folder / f"{split}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> None:
    """`python -m factory.evaluate.demo_nli [FOLDER]`: regenerate the files, one log line per file."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a script of its own: nobody else configures it
    for path in write(Path(argv[0] if argv else "recipes/demo/nli")):
        log.info("wrote %s", path)


if __name__ == "__main__":
    main(sys.argv[1:])
