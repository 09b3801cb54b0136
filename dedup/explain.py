"""Why two texts are (or are not) one story: every stage's decision for one pair, and the two texts aligned
passage by passage.

The verifier scores a pair from its sentences; `explain` shows those sentences. All knowledge of how the
verifier reads a text sits in `_VerifierView` below: it splits a text where the verifier does, profiles each
passage with the verifier's own `Profiles`, and asks `score_pairs` which passages have a counterpart; how it decides
a pair and which rule decided are in `_decide` and `_rule`. When the verifier changes, those are the places to
adapt; `tests/test_explain.py` checks that the passages it finds add up to the verifier's own scores of whole texts.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from dedup import verify
from dedup.bands import bucket_rows
from dedup.params import Params
from dedup.sketch import sketch_index

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")  # figures as the verifier reads them: 10,000 and 10.000 are one number
# characters that would act rather than show: C0/C1 controls (a terminal's escape sequences) and bidi overrides,
# which reorder what a reader sees around them
_ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(s: str) -> str:
    """`s` with every control or bidi-override character written out as an escape (`\\x1b`), so that a
    document's text cannot drive a terminal or reorder a page."""
    return _ACTIVE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)


@dataclass(frozen=True)
class Passage:
    """One sentence of a text as the verifier cuts it: [start, end) in the original text, and its weight (the
    distinct content words and numbers that count towards the scores)."""

    index: int
    start: int
    end: int
    text: str
    weight: int
    figures: tuple[str, ...]


@dataclass(frozen=True)
class PassageMatch:
    """The counterpart of one passage of the text whose passages must find counterparts (`side`), or its
    closest passage when it has none. `similarity` is the Dice share of content words the verifier compares with
    `verify.SENT_MATCH`; `matched` is the verifier's own decision (similar enough and the same figures);
    `in_order` says whether the match belongs to the heaviest chain of matches in the same order."""

    a: int
    b: int | None
    similarity: float
    matched: bool
    in_order: bool
    figures_a_only: tuple[str, ...]
    figures_b_only: tuple[str, ...]


@dataclass(frozen=True)
class Document:
    doc_id: str | None
    title: str | None
    source: str | None
    published_at: str | None
    words: int
    in_index: bool


@dataclass(frozen=True)
class CandidateStage:
    """The LSH stage: bands whose buckets the two texts share (whole text, lead, anchors) against `min_bands`."""

    whole_bands: int
    lead_bands: int
    anchor_bands: int
    bands: int
    min_bands: int
    too_short: bool
    candidate: bool
    jaccard_est: float


@dataclass(frozen=True)
class VerifyStage:
    aligned: float
    ordered: float
    jaccard: float
    containment: float
    score: float
    threshold: float
    linked: bool
    rule: str
    stored_score: float | None


@dataclass(frozen=True)
class ClusterStage:
    cluster_a: int | None
    cluster_b: int | None
    size_a: int | None
    size_b: int | None
    same_story: bool | None
    decision: str


@dataclass(frozen=True)
class Alignment:
    """Both texts' passages and the counterparts found for them. `side` names the text whose passages must find
    counterparts (the one with fewer content words), so `matches[k].a` indexes that side's passages and `.b`
    the other side's."""

    passages_a: list[Passage]
    passages_b: list[Passage]
    side: str
    matches: list[PassageMatch]


class WholeScores(NamedTuple):
    aligned: float
    ordered: float
    jaccard: float
    containment: float
    words_a: int   # whitespace words, as the verifier counts them for its brief and short-text rules
    words_b: int


class Verdict(NamedTuple):
    score: float
    linked: bool
    rule: str                  # the verifier's `rule` column: copy, rewrite, brief, short
    signals: dict[str, float]  # the rewrite model's signals and probability (v3 to v6; empty before v3)
    excerpt: str | None = None  # v10: why the caps for short texts do not hold the pair down, if they would have


class PassageScores(NamedTuple):
    matched: np.ndarray     # (passages of A, passages of B): counterparts for the verifier
    similarity: np.ndarray  # Dice share of content words


@dataclass
class Explanation:
    """Everything `dedup explain` prints."""

    a: Document
    b: Document
    alignment: Alignment
    candidate: CandidateStage
    verification: VerifyStage
    cluster: ClusterStage
    params: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side view: a passage of each text (either may be missing) and how they match."""

    a: Passage | None
    b: Passage | None
    kind: str          # "match" (in order), "moved" (matched out of order), "only" (no counterpart)
    similarity: float | None
    note: str


class _VerifierView:
    """The verifier's reading of texts, built only from `dedup.verify`: its sentence boundary, its profiles and
    its pair scores. Passages are profiled as one-sentence documents, so `score_pairs` of two passages is 1 when
    the verifier would count them as counterparts."""

    def __init__(self, verifier: str):
        # v3 to v6 read sentences as v2 does (their copy rule); their rewrite models' signals come from `decide`
        self.verifier = "v2" if verifier in verify.REWRITE_VERIFIERS else verifier

    def passages(self, text: str) -> list[Passage]:
        """The text cut where the verifier ends a sentence (at a boundary once the sentence holds
        `MIN_SENT_WORDS` content words; a short tail joins the sentence before it). The text is cut at every
        boundary, and the pieces are put back together so that each passage holds the content words of one of
        the verifier's sentences of the whole text."""
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        ends = [_past_quotes(text, i + 1) for i, c in enumerate(text) if c in ".!?\n" and verify._is_boundary(cps, i)]
        cuts = sorted({0, len(text), *ends})
        pieces = [(s, e) for s, e in zip(cuts, cuts[1:]) if e > s]
        if not pieces:
            return []
        whole = verify.Profiles([text], self.verifier)
        so = whole.sent_offsets
        sentences = [frozenset(whole.tokens[so[i]:so[i + 1]].tolist()) for i in range(whole.doc_sents[1])]
        prof = verify.Profiles([text[s:e] for s, e in pieces], self.verifier)
        do = prof.doc_offsets
        sets = [frozenset(prof.doc_tokens[do[k]:do[k + 1]].tolist()) for k in range(len(pieces))]
        groups, start, held, seen, j = [], 0, 0, frozenset(), 0
        for k, (_, e) in enumerate(pieces):
            seen, held = seen | sets[k], held + len(sets[k])
            nxt = sets[k + 1] if k + 1 < len(pieces) else None
            if nxt is None or j >= len(sentences) - 1 or seen != sentences[j]:
                continue
            # the pieces so far make sentence j: the next piece starts sentence j + 1 unless it can only be j's
            if nxt <= sentences[j] and (not nxt <= sentences[j + 1] or held < verify.MIN_SENT_WORDS):
                continue
            groups.append((start, e, j))
            start, held, seen, j = e, 0, frozenset(), j + 1
        groups.append((start, len(text), j))
        return [Passage(k, s, e, text[s:e].strip(), len(sentences[i]) if i < len(sentences) else 0,
                        tuple(_NUMBER.findall(text[s:e]))) for k, (s, e, i) in enumerate(groups)]

    def compare(self, pa_: list[Passage], pb: list[Passage]) -> PassageScores:
        """(matched, similarity): the verifier's counterpart decision and the Dice share of content words for
        every passage pair, as (len(pa_), len(pb)) matrices."""
        na, nb = len(pa_), len(pb)
        if not na or not nb:
            return PassageScores(np.zeros((na, nb), bool), np.zeros((na, nb)))
        prof = verify.Profiles([p.text for p in pa_ + pb], self.verifier)
        ia, ib = np.repeat(np.arange(na), nb), np.tile(np.arange(nb), na) + na
        aligned = verify.score_pairs(prof, ia, ib)[0].reshape(na, nb)
        # Dice over content words (numbers, which carry the top bit, are compared apart by the verifier)
        words = prof.doc_tokens >> np.uint64(63) == 0
        docs = np.repeat(np.arange(na + nb), np.diff(prof.doc_offsets))[words]
        _, col = np.unique(prof.doc_tokens[words], return_inverse=True)
        m = sp.csr_matrix((np.ones(len(col)), (docs, col)), shape=(na + nb, int(col.max(initial=-1)) + 1))
        common = (m[:na] @ m[na:].T).toarray()
        size = np.asarray(m.sum(axis=1)).ravel()
        total = size[:na, None] + size[None, na:]
        dice = np.divide(2 * common, total, out=np.zeros_like(common), where=total > 0)
        return PassageScores(aligned > 0.5, dice)

    def scores(self, text_a: str, text_b: str) -> WholeScores:
        """The verifier's scores of the whole texts."""
        prof = verify.Profiles([text_a, text_b], self.verifier)
        al, od, jac, con = verify.score_pairs(prof, np.array([0]), np.array([1]))
        return WholeScores(float(al[0]), float(od[0]), float(jac[0]), float(con[0]), int(prof.words[0]),
                           int(prof.words[1]))


def _decide(text_a: str, text_b: str, bands: int, p: Params) -> Verdict:
    """(score, linked) exactly as ingest decides them."""
    cands = pa.table({"doc_a": ["a"], "doc_b": ["b"], "bands": pa.array([bands], pa.int32())})
    out = verify.verify_pairs(cands, pa.table({"doc_id": ["a", "b"], "text": [text_a, text_b]}), p).to_pylist()[0]
    signals = {k: out[k] for k in ("rewrite", *verify.REWRITE_SIGNALS, *verify.TREE_SIGNALS["v5"], "rewrite_first",
                                   *verify.PARAPHRASE_SIGNALS) if out.get(k) is not None}
    return Verdict(float(out["score"]), bool(out["linked"]), out["rule"], signals if "rewrite" in signals else {},
                   _excerpt(out, text_a, text_b, p))


def _excerpt(out: dict, text_a: str, text_b: str, p: Params) -> str | None:
    """v10: why the caps do not hold the pair down (its shorter text a verbatim excerpt of the other), if so."""
    if p.verifier not in verify.EXCERPTS or out.get("figures") is None:
        return None
    one = lambda k: np.array([out[k]], np.float32)  # noqa: E731
    if not verify.excerpt_candidates(np.ones(1, bool), one("aligned"), one("figures"))[0]:
        return None
    containment = verify.gram_overlap(text_a, text_b).containment
    if containment < verify.EXCERPT_CONTAINMENT:
        return None
    return (f"but the shorter text is a verbatim excerpt of the other (aligned {out['aligned']:.2f} ≥ "
            f"{verify.EXCERPT_ALIGNED}, every figure shared, character {verify.TEMPLATE_GRAMS}-gram containment "
            f"{containment:.2f} ≥ {verify.EXCERPT_CONTAINMENT}), which the caps do not hold down")

def _rewrite_rule(v: Verdict, p: Params, text_a: str, text_b: str) -> str:
    """What the rewrite model (v3's regression, the trees of v4 to v10) made of the pair."""
    from dedup.trees import forest
    parts = ", ".join(f"{k} {v.signals[k]:.2f}" for k in (*verify.REWRITE_SIGNALS, *verify.TREE_SIGNALS["v5"],
                                                          *verify.PARAPHRASE_SIGNALS) if k in v.signals)
    cmp = "≥" if v.signals["rewrite"] >= p.verify_threshold else "<"
    sits = "trees (anchors, figures, loose order, sentence vectors and where they sit, shared words and names)"
    model = {"v4": "trees (anchors, figures, loose order, sentence vectors)", "v5": sits, "v6": sits, "v7": sits,
             "v8": sits, "v9": sits, "v10": sits}.get(p.verifier, "(anchors, figures, loose order)")
    floor = forest(p.paraphrase_trees).floor if p.paraphrase_trees else None
    if "para_cover" in v.signals:
        model += (f", probability {v.signals['rewrite_first']:.2f}, at least their floor {floor:.3f}, so second "
                  f"trees that also read a paraphrase encoder's sentence vectors decided")
    elif floor is not None and v.signals.get("rewrite_first", np.inf) < floor:
        model += (f", probability {v.signals['rewrite_first']:.2f}, under the floor {floor:.3f} from which second "
                  f"trees that also read a paraphrase encoder's sentence vectors are asked, so these trees decided")
    elif (p.verifier in verify.SECOND_HELD and floor is not None and "rewrite_first" in v.signals
          and (grams := verify.gram_overlap(text_a, text_b)).reissue):
        # at least the floor, yet v9, v10 ask their second trees about no pair that overlaps like a re-issue: say so,
        # or the floor looks ignored
        model += (f", probability {v.signals['rewrite_first']:.2f}, at least the second trees' floor {floor:.3f}, but "
                  f"the texts overlap like a re-issued report (character {verify.TEMPLATE_GRAMS}-grams: containment "
                  f"{grams.containment:.2f}, Jaccard {grams.jaccard:.2f}; ≥ {verify.TEMPLATE_GRAM_CONTAINMENT} or ≥ "
                  f"{verify.TEMPLATE_GRAM_JACCARD}), which the second trees were only ever shown as copies, so these "
                  f"trees decided")
    return (f"rewrite model {model}: probability {v.signals['rewrite']:.2f} {cmp} "
            f"verify_threshold {p.verify_threshold} from {parts}")

def _in_order(best: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Which passages belong to the heaviest chain whose counterparts (`best`, -1 for none) come in the same
    order: the verifier's `ordered` score counts only those, but its kernel returns the total alone, so the
    chain is found again here the way `verify._alignment` finds it."""
    n = len(best)
    total, prev = np.zeros(n, np.int64), np.full(n, -1)
    for x in range(n):
        if best[x] < 0:
            continue
        before = 0
        for y in range(x):
            if 0 <= best[y] < best[x] and total[y] > before:
                before, prev[x] = total[y], y
        total[x] = before + weight[x]
    keep = np.zeros(n, bool)
    x = int(np.argmax(total)) if n and total.max() > 0 else -1
    while x >= 0:
        keep[x] = True
        x = int(prev[x])
    return keep

def _caps(w: WholeScores, p: Params) -> str | None:
    """Why the caps for short texts would hold the pair down, if they would."""
    aligned, jaccard, shorter = w.aligned, w.jaccard, min(w.words_a, w.words_b)
    if shorter < p.brief_words and (aligned < verify.BRIEF_ALIGNED or jaccard < verify.BRIEF_JACCARD):
        return (f"brief (shorter text {shorter} words < {p.brief_words}) that is not near-identical "
                f"(needs aligned ≥ {verify.BRIEF_ALIGNED} and jaccard ≥ {verify.BRIEF_JACCARD})")
    if shorter < verify.SHORT_WORDS and (aligned < verify.SHORT_ALIGNED or jaccard < verify.SHORT_JACCARD):
        return (f"short text ({shorter} words < {verify.SHORT_WORDS}) needs aligned ≥ {verify.SHORT_ALIGNED} "
                f"and jaccard ≥ {verify.SHORT_JACCARD}")
    return None


def _capped(p: Params) -> str:
    """What the caps hold down: the copy rule's score alone from v6 on."""
    return f"{'the copy rule' if p.verifier in verify.COPY_ONLY_CAPS else 'score'} capped at {verify.KEEP_SCORE}"


def _rule(verifier: str, w: WholeScores, score: float, linked: bool, p: Params, excerpt: str | None = None) -> str:
    """Which of the verifier's rules set the score (`verifier` as `_VerifierView` reads texts)."""
    aligned, ordered, jaccard = w.aligned, w.ordered, w.jaccard
    cmp = "≥" if linked else "<"
    if verifier == "v2" and jaccard >= verify.REORDERED_JACCARD:
        base = f"nearly the same words (jaccard {jaccard:.2f} ≥ {verify.REORDERED_JACCARD}): order not asked, " \
               f"score = aligned {aligned:.2f}"
    elif verifier == "v2":
        base = f"score = share of words in passages matched in order {ordered:.2f}"
        if aligned - ordered >= 0.05:
            base += f" (in any order {aligned:.2f}: some passages match out of order)"
    else:
        base = f"score = aligned {aligned:.2f} (verifier v1: any order)"
    held = _caps(w, p)
    if held and not excerpt:
        return f"{held}: {_capped(p)}, not linked"
    if held:
        base = f"{held}, {excerpt}: {base}"
    return f"{base}; {score:.2f} {cmp} verify_threshold {p.verify_threshold}: {'linked' if linked else 'not linked'}"


def _past_quotes(text: str, i: int) -> int:
    """Where a passage ending at i ends for the eye: after the quotes and parenthesis closing its sentence."""
    while i < len(text) and text[i] in "\"')\u201d\u2019":
        i += 1
    return i


def align(text_a: str, text_b: str, verifier: str = "v2") -> Alignment:
    """Passages of both texts and the best counterpart of each passage of the side that must find them (fewer
    content words; between two of one size, the side that matches better)."""
    view = _VerifierView(verifier)
    pa_, pb = view.passages(text_a), view.passages(text_b)
    matched, dice = view.compare(pa_, pb)

    def one_way(ours: list[Passage], theirs: list[Passage], ok: np.ndarray, sim: np.ndarray
                ) -> tuple[list[PassageMatch], float]:
        weight = np.array([p.weight for p in ours], np.int64)
        best = np.where(ok.any(axis=1), np.argmax(np.where(ok, sim, -1.0), axis=1), -1) if ok.size else \
            np.full(len(ours), -1)
        order = _in_order(best, weight)
        out = []
        for k, p in enumerate(ours):
            j = int(best[k]) if best[k] >= 0 else (int(np.argmax(sim[k])) if sim.shape[1] else None)
            if j is not None and sim[k, j] <= 0:
                j = None
            fa, fb = (set(p.figures), set(theirs[j].figures)) if j is not None else (set(p.figures), set())
            out.append(PassageMatch(k, j, float(sim[k, j]) if j is not None else 0.0, bool(best[k] >= 0),
                                    bool(order[k]), tuple(sorted(_numbers(fa) - _numbers(fb))),
                                    tuple(sorted(_numbers(fb) - _numbers(fa)))))
        return out, float(weight[order].sum())

    wa, wb = sum(p.weight for p in pa_), sum(p.weight for p in pb)
    forward, fw = one_way(pa_, pb, matched, dice)
    if wa < wb:
        return Alignment(pa_, pb, "a", forward)
    backward, bw = one_way(pb, pa_, matched.T, dice.T)
    if wa > wb or bw > fw:
        return Alignment(pa_, pb, "b", backward)
    return Alignment(pa_, pb, "a", forward)


def _numbers(figures: set[str]) -> set[str]:
    return {re.sub(r"[.,]", "", f) for f in figures}


def rows(e: Alignment) -> list[Row]:
    """The side-by-side view: matches in order share a row; every other passage has a row of its own, placed
    where it falls in its text. Rows always hold text A on the left."""
    ours, theirs = (e.passages_a, e.passages_b) if e.side == "a" else (e.passages_b, e.passages_a)
    out: list[tuple[Passage | None, Passage | None, str, float | None, str]] = []
    shown = 0  # the other side's passages placed so far
    counter = {m.b: m for m in e.matches if m.matched}
    for m in e.matches:
        mine = ours[m.a]
        if m.matched and m.in_order:
            for k in range(shown, m.b):  # type: ignore[arg-type]
                out.append((None, theirs[k], "only" if k not in counter else "moved", None, ""))
            shown = max(shown, m.b + 1)  # type: ignore[operator]
            out.append((mine, theirs[m.b], "match", m.similarity,  # type: ignore[index]
                        _figures_note(m, mine, theirs[m.b], e.side)))  # type: ignore[index]
        elif m.matched:
            out.append((mine, None, "moved", m.similarity, f"matches #{m.b + 1} of the other text, out of order"))
        else:
            near = f"closest #{m.b + 1}: {m.similarity:.2f}" if m.b is not None else "nothing alike"
            why = f" (same words; {_figures_note(m, mine, theirs[m.b], e.side)})" \
                if m.b is not None and m.similarity >= verify.SENT_MATCH else ""
            out.append((mine, None, "only", m.similarity if m.b is not None else None, near + why))
    for k in range(shown, len(theirs)):
        out.append((None, theirs[k], "only" if k not in counter else "moved", None, ""))
    if e.side == "b":
        return [Row(t, o, kind, s, note) for o, t, kind, s, note in out]
    return [Row(o, t, kind, s, note) for o, t, kind, s, note in out]


def _figures_note(m: PassageMatch, mine: Passage, theirs: Passage, side: str) -> str:
    """The figures two passages share, or those only one of them has (named by text, A or B)."""
    if m.figures_a_only or m.figures_b_only:
        only = {side: m.figures_a_only, "b" if side == "a" else "a": m.figures_b_only}
        note = f"figures differ: A {', '.join(only['a']) or '-'} / B {', '.join(only['b']) or '-'}"
        return note + (" (a lost digit, forgiven)" if m.matched else "")
    shared = sorted(_numbers(set(mine.figures)) & _numbers(set(theirs.figures)))
    return f"figures agree: {', '.join(shared)}" if shared else ""


@dataclass(frozen=True)
class Side:
    """One text to explain: an indexed document (its stored fields) or a text given by the caller."""

    text: str
    doc: Document


def explain_texts(a: Side, b: Side, p: Params, stored_score: float | None = None,
                  cluster: ClusterStage | None = None) -> Explanation:
    """Explain a pair of texts under the parameters `p` of an index."""
    view = _VerifierView(p.verifier)
    sk = sketch_index([a.text, b.text], p)
    keys = bucket_rows(["a", "b"], sk.signatures, sk.lead, sk.anchors, p).to_pylist()
    mine = {(r["band"], r["bucket"]) for r in keys if r["doc_id"] == "a"}
    shared = [band for band, bucket in {(r["band"], r["bucket"]) for r in keys if r["doc_id"] == "b"} & mine]
    whole = sum(1 for band in shared if band < p.bands)
    anchor = sum(1 for band in shared if band >= 2 * p.bands)
    too_short = bool(min(sk.words) < p.min_words)
    est = (whole / p.bands) ** (1.0 / p.rows)
    cand = CandidateStage(whole, len(shared) - whole - anchor, anchor, p.bands, p.min_bands, too_short,
                          not too_short and len(shared) >= p.min_bands, est)
    w = view.scores(a.text, b.text)
    verdict = _decide(a.text, b.text, whole, p)
    score, linked = verdict.score, verdict.linked
    rule = _rule(view.verifier, w, score, linked, p, verdict.excerpt)
    if verdict.rule == "rewrite":  # the trees lifted the pair, maybe over the caps' hold on the copy rule
        held = _caps(w, p) if p.verifier in verify.COPY_ONLY_CAPS and not verdict.excerpt else None
        rule = (f"{held}: {_capped(p)}; " if held else "") + _rewrite_rule(verdict, p, a.text, b.text) + \
            (": linked" if linked else ": not linked")
    elif verdict.rule == "template":  # v8 to v10
        copy = w.aligned if w.jaccard >= verify.REORDERED_JACCARD else w.ordered
        rule = (f"the copy rule would link it (share of words in passages matched in order {copy:.2f} ≥ "
                f"verify_threshold {p.verify_threshold}), but its texts are short (under {verify.TEMPLATE_WORDS} "
                f"words) and share less of their character {verify.TEMPLATE_GRAMS}-grams than a re-issued report "
                f"(containment < {verify.TEMPLATE_GRAM_CONTAINMENT}, Jaccard < {verify.TEMPLATE_GRAM_JACCARD}), so "
                f"the template check asked the rewrite trees: probability {verdict.signals['rewrite']:.3f} < "
                f"{verify.TEMPLATE_PROBABILITY}, unlike any copy (items of one template); score held at "
                f"{verify.KEEP_SCORE}: not linked")
    elif verdict.signals:
        rule += "; " + _rewrite_rule(verdict, p, a.text, b.text)
    ver = VerifyStage(w.aligned, w.ordered, w.jaccard, w.containment, score, p.verify_threshold, linked,
                      rule, stored_score)
    docs = [dataclasses.replace(s.doc, words=int(w)) for s, w in ((a, sk.words[0]), (b, sk.words[1]))]
    if cluster is None:
        cluster = ClusterStage(None, None, None, None, None, "not both in the index: no cluster decision")
    return Explanation(docs[0], docs[1], align(a.text, b.text, p.verifier), cand, ver, cluster, p.to_dict())


def explain(index: str, id_a: str, id_b: str | None = None, text_b: str | None = None) -> Explanation:
    """Explain an indexed document against another (`id_b`) or against a text that need not be indexed."""
    from dedup.query import Index

    if (id_b is None) == (text_b is None):
        raise ValueError("give exactly one of id_b or text_b")
    ix = Index(index)
    ids = [id_a] + ([id_b] if id_b is not None else [])
    found = {r["doc_id"]: r for r in ix.sql(
        "SELECT d.doc_id, d.title, d.source, strftime(d.published_at, '%Y-%m-%d') AS published_at, d.text, "
        "c.cluster_id, c.size FROM documents d LEFT JOIN clusters c USING (doc_id) WHERE list_contains($ids, doc_id)",
        {"ids": ids}).to_pylist()}
    for i in ids:
        if i not in found:
            raise KeyError(f"document {i!r} is not in {index}")
        if found[i]["text"] is None:
            raise KeyError(f"document {i!r} was stored without its text (--no-store-text); explain it with "
                           "--text-file instead")

    def side(r: dict) -> Side:
        return Side(r["text"], Document(r["doc_id"], r["title"], r["source"], r["published_at"], 0, True))

    ra = found[id_a]
    if text_b is not None:
        b = Side(text_b, Document(None, None, None, None, 0, False))
        e = explain_texts(side(ra), b, ix.params)
        e.cluster = _new_text_cluster(e, ra)
        return e
    rb = found[id_b]
    lo, hi = sorted([id_a, id_b])
    stored = ix.sql("SELECT score FROM pairs WHERE doc_a = $a AND doc_b = $b", {"a": lo, "b": hi}).to_pylist()
    stored_score = stored[0]["score"] if stored else None
    e = explain_texts(side(ra), side(rb), ix.params, stored_score)
    e.cluster = _cluster_decision(e, ra, rb, ix.params)
    return e


def _cluster_decision(e: Explanation, ra: dict, rb: dict, p: Params) -> ClusterStage:
    ca, cb = ra["cluster_id"], rb["cluster_id"]
    same = ca is not None and ca == cb
    linked = e.verification.linked
    if same and linked:
        text = f"one story: linked, both in cluster {ca} ({ra['size']} documents)"
    elif same:
        text = f"one story (cluster {ca}, {ra['size']} documents) through other documents, not linked directly"
    elif linked:
        text = (f"linked, yet two stories ({ca} and {cb}): average linkage over their component cut at "
                f"cluster_threshold {p.cluster_threshold} keeps them apart")
    else:
        text = f"two stories: cluster {ca} ({ra['size']} documents) and cluster {cb} ({rb['size']} documents)"
    return ClusterStage(ca, cb, ra["size"], rb["size"], same, text)


def _new_text_cluster(e: Explanation, ra: dict) -> ClusterStage:
    if not e.candidate.candidate:
        text = "the text would not become a candidate of this document: no link, no shared story"
    elif e.verification.linked:
        text = f"if ingested, the text would be linked to {ra['doc_id']} and join cluster {ra['cluster_id']}"
    else:
        text = f"if ingested, the text would be a candidate but not a copy of {ra['doc_id']}"
    return ClusterStage(ra["cluster_id"], None, ra["size"], None, None, text)


_STYLE = {"match": {"fg": "green"}, "moved": {"fg": "yellow"}, "only": {"dim": True}}


def render_text(e: Explanation, width: int = 120) -> str:
    """The explanation for a terminal: each stage's decision, then the two texts side by side (ANSI styles:
    green = matched in order, yellow = matched out of order, dim = no counterpart; `click.echo` drops them
    when stdout is not a terminal)."""
    import textwrap

    import click

    def who(label: str, d: Document) -> str:
        if not d.in_index:
            return f"{label}  (text not in the index, {d.words} words)"
        meta = ", ".join(x for x in (d.source, d.published_at, f"{d.words} words") if x)
        return visible(f"{label}  {d.doc_id}  {d.title or ''}  ({meta})")

    c, v = e.candidate, e.verification
    if c.too_short:
        cand = "a text under min_words is never banded: not a candidate"
    else:
        cand = (f"{c.whole_bands} whole-text + {c.lead_bands} lead + {c.anchor_bands} anchor bands shared "
                f"(min_bands {c.min_bands}): "
                f"{'a candidate' if c.candidate else 'not a candidate'}; MinHash Jaccard estimate {c.jaccard_est:.2f}")
    stored = f" (stored in the index: {v.stored_score:.2f})" if v.stored_score is not None else ""
    lines = [who("A", e.a), who("B", e.b), "",
             f"candidate  {cand}",
             f"verify     aligned {v.aligned:.2f}, in order {v.ordered:.2f}, jaccard {v.jaccard:.2f}, "
             f"containment {v.containment:.2f} → score {v.score:.2f}{stored}",
             f"           {visible(v.rule)}",
             f"cluster    {visible(e.cluster.decision)}", ""]
    al = e.alignment
    ours = al.passages_a if al.side == "a" else al.passages_b
    matched = sum(ours[m.a].weight for m in al.matches if m.matched)
    lines.append(f"passages   A {len(al.passages_a)}, B {len(al.passages_b)}; text {al.side.upper()} has fewer "
                 f"content words, {matched} of its {sum(p.weight for p in ours)} sit in passages with a counterpart. "
                 + click.style("in order", **_STYLE["match"]) + ", " + click.style("out of order", **_STYLE["moved"])
                 + ", " + click.style("no counterpart", **_STYLE["only"]))
    col = max(20, (width - 9) // 2)
    for r in rows(al):
        left = textwrap.wrap(visible(" ".join(r.a.text.split())), col) if r.a else []
        right = textwrap.wrap(visible(" ".join(r.b.text.split())), col) if r.b else []
        score = f"{r.similarity:.2f}" if r.similarity is not None and r.kind != "only" else "    "
        style = _STYLE[r.kind]
        lines.append("")
        for k in range(max(len(left), len(right), 1)):
            lt = left[k] if k < len(left) else ""
            rt = right[k] if k < len(right) else ""
            mid = score if k == 0 else "    "
            lines.append(click.style(lt.ljust(col), **style) + f"  {mid}  " + click.style(rt, **style))
        if r.note:
            lines.append(click.style(f"  ↳ {r.note}", dim=True))
    return "\n".join(lines)
