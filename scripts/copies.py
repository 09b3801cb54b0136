"""Generators of labelled near-duplicate copies for the quality benchmark.

Every generator takes the text of an original (``title + "\\n\\n" + body``, paragraphs
separated by blank lines) and a ``numpy.random.Generator`` and returns a new text, so a
fixed seed gives the same copies on every run.  ``plan_copies`` decides which originals get
which kinds of copies and ``make_copies`` builds them.

Copy kinds (the ``kind`` label of a copy):

* ``mt-es``, ``mt-gl``, ``mt-eo``, ``mt-ca``: Apertium round trip through Spanish, Galician,
  Esperanto or Catalan, taken unchanged from ``bbc2225_300_es-gl-eo-ca.jsonl.zst``.
* ``drop``: 20-40 % of the body sentences removed.
* ``abridge``: only the first 50-70 % of the text kept, cut at a sentence boundary.
* ``boilerplate``: dateline prefix (``LONDON (Global Wire) -``), sometimes a header line and
  one or two page footers.  The footers and headers come from small fixed lists, so the same
  boilerplate is shared by copies of many different stories.
* ``reorder``: body paragraphs shuffled (the title stays first).
* ``ocr``: 2-4 % character noise (OCR confusions such as m/rn, l/1, O/0, dropped
  characters, merged words, words broken by a hyphen and a line break).
* ``mt+abridge``, ``mt+drop``: ``abridge`` / ``drop`` applied to a round trip whose pivot
  language is chosen at random among the usable ones.

A round trip is usable (``roundtrip_ok``) only if it is not broken; see that function.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

PIVOTS: tuple[str, ...] = ("es", "gl", "eo", "ca")
KINDS: tuple[str, ...] = (
    *(f"mt-{p}" for p in PIVOTS),
    "drop",
    "abridge",
    "boilerplate",
    "reorder",
    "ocr",
    "mt+abridge",
    "mt+drop",
)
MIN_COPIES, MAX_COPIES = 3, 6

# A round trip is broken when its length is far from the original's or when most of its
# words do not occur in the original at all (untranslated or garbage output).  On the
# shipped file the working pivots have length ratios 0.93-1.16 and 70-90 % of their word
# tokens present in the original; the Catalan pivot is empty for 29 of the 300 articles.
MIN_LENGTH_RATIO, MAX_LENGTH_RATIO = 0.8, 1.3
MIN_KNOWN_WORD_FRACTION = 0.5

_WORD = re.compile(r"\w+")
# End of a sentence: ``.!?`` plus closing quotes/brackets, followed by whitespace and a capital
# letter or a digit (optionally behind an opening quote).
_SENTENCE_END = re.compile(r"[.!?][\"'\u2019\u201d)]*(?=\s+[\"'\u2018\u201c(]?[A-Z0-9])")


def roundtrip_ok(original: str, back: str | None) -> bool:
    """Whether a back-translation is usable as a copy (see the module constants)."""
    if not back or not back.strip():
        return False
    ratio = len(back) / len(original)
    if not MIN_LENGTH_RATIO <= ratio <= MAX_LENGTH_RATIO:
        return False
    vocabulary = set(_WORD.findall(original.lower()))
    words = _WORD.findall(back.lower())
    known = sum(word in vocabulary for word in words) / max(1, len(words))
    return known >= MIN_KNOWN_WORD_FRACTION


def split_paragraphs(text: str) -> tuple[str, list[str]]:
    """Split a text into its first paragraph (the title) and the remaining paragraphs."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return paragraphs[0], paragraphs[1:]


def join_paragraphs(title: str, body: list[str]) -> str:
    """Inverse of ``split_paragraphs``."""
    return "\n\n".join([title, *body])


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences (see ``_SENTENCE_END``)."""
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(paragraph)), len(paragraph)]
    return [paragraph[a:b].strip() for a, b in zip(cuts, cuts[1:]) if paragraph[a:b].strip()]


def drop_sentences(text: str, rng: np.random.Generator) -> str:
    """Remove 20-40 % of the body sentences (at least one); the title is kept."""
    title, body = split_paragraphs(text)
    sentences = [(i, s) for i, paragraph in enumerate(body) for s in split_sentences(paragraph)]
    n_drop = max(1, round(rng.uniform(0.2, 0.4) * len(sentences)))
    dropped = set(rng.choice(len(sentences), size=min(n_drop, len(sentences) - 1), replace=False).tolist())
    kept: dict[int, list[str]] = {}
    for k, (i, sentence) in enumerate(sentences):
        if k not in dropped:
            kept.setdefault(i, []).append(sentence)
    return join_paragraphs(title, [" ".join(kept[i]) for i in sorted(kept)])


def abridge(text: str, rng: np.random.Generator) -> str:
    """Keep the first 50-70 % of the text (by characters), cut at the nearest sentence end."""
    target = rng.uniform(0.5, 0.7) * len(text)
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    ends += [m.start() for m in re.finditer(r"\n\s*\n", text)]
    ends = [e for e in ends if e > len(text) * 0.3]
    if not ends:
        return text[: int(target)].rstrip()
    cut = min(ends, key=lambda e: abs(e - target))
    return text[:cut].rstrip()


def reorder_paragraphs(text: str, rng: np.random.Generator) -> str:
    """Shuffle the body paragraphs (never returning the original order); the title stays first."""
    title, body = split_paragraphs(text)
    if len(body) < 2:
        return text
    order = np.arange(len(body))
    while (order == np.arange(len(body))).all():
        order = rng.permutation(len(body))
    return join_paragraphs(title, [body[i] for i in order])


# --- boilerplate -------------------------------------------------------------------------

CITIES = ("LONDON", "NEW YORK", "WASHINGTON", "BRUSSELS", "PARIS", "MANCHESTER", "SYDNEY", "TOKYO")
AGENCIES = ("Global Wire", "Continental Press", "NewsDesk International", "Metro News Service")
MONTHS = ("Jan", "Feb", "March", "April", "May", "June", "Dec")
DATELINES = (
    "{city} ({agency}) - ",
    "{city}, {month} {day} ({agency}) -- ",
    "{city} \u2014 ",
    "By {agency} staff | {city} | ",
)
HEADERS = (
    "BREAKING NEWS",
    "UPDATED {day} {month} 2005, 14:32 GMT",
    "Advertisement",
    "Listen to this article | 4 min read",
)
FOOTERS = (
    "Copyright 2005 Global Wire Ltd. All rights reserved. This material may not be published, "
    "broadcast, rewritten or redistributed without prior written permission.\n\n"
    "Click here to subscribe to our daily newsletter and get the top stories delivered to your "
    "inbox every morning.",
    "Related stories:\n- Markets close higher as investors weigh the outlook for interest rates\n"
    "- Five things to watch in the week ahead\n- Analysis: what the latest figures really tell us\n\n"
    "Share this article: Facebook | Twitter | Email | Print",
    "(Reporting by staff correspondents; editing by the news desk)\n\n"
    "\u00a9 2005 NewsDesk International. All rights reserved. Terms of use | Privacy policy | "
    "Cookie settings | Accessibility | Contact us | Advertise with us",
    "Do you have a news tip? E-mail our newsroom or call our 24-hour hotline. Follow us on "
    "Twitter and Facebook for breaking news updates, and download our free app for iPhone and "
    "Android.\n\nComments are closed for this story.",
    "Sign up for our free e-mail alerts. Get the latest headlines, analysis and exclusive reports "
    "delivered straight to your inbox. You can unsubscribe at any time. Read our privacy notice "
    "to find out how we use your data.\n\nCopyright \u00a9 Continental Press 2005. All rights reserved.",
    "Most read\n1. Ten things you missed this weekend\n2. The pictures of the year so far\n"
    "3. Your questions answered by our experts\n4. Weather: what to expect in the coming days\n\n"
    "Metro News Service is not responsible for the content of external internet sites.",
)


def add_boilerplate(text: str, rng: np.random.Generator) -> str:
    """Prefix a dateline to the first body paragraph, sometimes add a header, add 1-2 footers."""
    title, body = split_paragraphs(text)
    fields = {
        "city": CITIES[rng.integers(len(CITIES))],
        "agency": AGENCIES[rng.integers(len(AGENCIES))],
        "month": MONTHS[rng.integers(len(MONTHS))],
        "day": int(rng.integers(1, 29)),
    }
    dateline = DATELINES[rng.integers(len(DATELINES))].format(**fields)
    body = [dateline + body[0], *body[1:]]
    if rng.random() < 0.5:
        title = HEADERS[rng.integers(len(HEADERS))].format(**fields) + "\n\n" + title
    n_footers = 1 + int(rng.random() < 0.4)
    footers = [FOOTERS[i] for i in rng.choice(len(FOOTERS), size=n_footers, replace=False)]
    return join_paragraphs(title, body + footers)


# --- OCR noise -----------------------------------------------------------------------------

OCR_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "m": ("rn",), "rn": ("m",), "l": ("1", "I"), "1": ("l",), "I": ("l", "1"), "O": ("0",),
    "0": ("O",), "o": ("0", "c"), "e": ("c",), "c": ("e",), "h": ("b", "li"), "cl": ("d",),
    "d": ("cl",), "S": ("5",), "5": ("S",), "B": ("8",), "i": ("l", "1"), "t": ("f",),
    "u": ("v", "ii"), "n": ("ri",), "w": ("vv",), ",": (".",), ".": (",",),
}


def ocr_noise(text: str, rng: np.random.Generator) -> str:
    """Corrupt 2-4 % of the characters the way OCR does.

    Each position is noisy with probability ``rate``.  A noisy position gets an OCR confusion
    (55 %, when the character or the two-character sequence, e.g. ``rn``, has one); otherwise
    a noisy space is dropped (words run together), a noisy letter is dropped (70 %) or gets
    ``-`` and a line break after it (a word broken by hyphenation), and any other noisy
    character is dropped.
    """
    rate = rng.uniform(0.02, 0.04)
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if rng.random() >= rate:
            out.append(char)
            i += 1
            continue
        source = text[i : i + 2] if text[i : i + 2] in OCR_CONFUSIONS else char
        if source in OCR_CONFUSIONS and rng.random() < 0.55:
            options = OCR_CONFUSIONS[source]
            out.append(options[rng.integers(len(options))])
            i += len(source)
            continue
        if char.isalpha() and rng.random() >= 0.7:
            out.append(char + "-\n")
        i += 1
    return "".join(out)


# --- planning and building ---------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One planted copy: its new id, text, kind, the original's id and the pivot used (if any)."""

    id: str
    text: str
    kind: str
    original_id: str
    pivot: str | None


def plan_copies(pivots_ok: dict[str, list[str]], rng: np.random.Generator) -> dict[str, list[str]]:
    """Choose the kinds of copies of each original.

    ``pivots_ok`` maps each original id to its usable pivots.  Each original gets 3-6 copies
    of distinct kinds; among the kinds it is eligible for (``mt-<p>`` needs pivot ``p``, the
    combined kinds need at least one pivot) the least used so far are preferred, with random
    tie-breaking, so the kinds end up balanced.
    """
    used: Counter[str] = Counter()
    plan: dict[str, list[str]] = {}
    for original_id, pivots in pivots_ok.items():
        eligible = [
            k for k in KINDS
            if (not k.startswith("mt-") or k[3:] in pivots) and (not k.startswith("mt+") or pivots)
        ]
        n = int(rng.integers(MIN_COPIES, MAX_COPIES + 1))
        tiebreak = rng.random(len(eligible))
        ranked = sorted(range(len(eligible)), key=lambda j: (used[eligible[j]], tiebreak[j]))
        plan[original_id] = [eligible[j] for j in ranked[:n]]
        used.update(plan[original_id])
    return plan


def usable_pivots(originals: dict[str, dict[str, str | None]]) -> dict[str, list[str]]:
    """The pivots whose round trip passes ``roundtrip_ok``, per original id."""
    return {
        oid: [p for p in PIVOTS if roundtrip_ok(rec["original"], rec[f"{p}_back_en"])]
        for oid, rec in originals.items()
    }


EDITS = {
    "drop": drop_sentences,
    "abridge": abridge,
    "boilerplate": add_boilerplate,
    "reorder": reorder_paragraphs,
    "ocr": ocr_noise,
}


def make_copies(originals: dict[str, dict[str, str | None]], seed: int) -> list[Copy]:
    """Build the planted copies.

    ``originals`` maps an original id to ``{"original": text, "es_back_en": ..., ...}``
    (one record of ``bbc2225_300_es-gl-eo-ca.jsonl.zst``).  Copy ids are
    ``<original id>~<kind>~<n>`` with ``n`` numbering the copies of that original from 1.
    """
    rng = np.random.default_rng(seed)
    pivots_ok = usable_pivots(originals)
    plan = plan_copies(pivots_ok, rng)
    copies: list[Copy] = []
    for oid, kinds in plan.items():
        rec = originals[oid]
        for n, kind in enumerate(kinds, start=1):
            pivot: str | None = None
            if kind.startswith("mt-"):
                pivot = kind[3:]
                text = rec[f"{pivot}_back_en"]
            elif kind.startswith("mt+"):
                pivot = pivots_ok[oid][rng.integers(len(pivots_ok[oid]))]
                text = EDITS[kind[3:]](rec[f"{pivot}_back_en"], rng)
            else:
                text = EDITS[kind](rec["original"], rng)
            copies.append(Copy(f"{oid}~{kind}~{n}", text, kind, oid, pivot))
    return copies
