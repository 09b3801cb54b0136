"""Stage 2: shingling.

- `char`: the n-code-point substrings of the normalized text (spaces included, so word boundaries count);
- `word`: n consecutive tokens joined by one space;
- `stem`: each content word cut to its first n characters — stop words and one-character tokens are
  dropped. Translation round trips and rewrites change word order, function words and endings ("vowed" →
  "vows", "the market of property" → "property market") but keep most content-word stems, so a copy keeps a far
  higher share of these shingles than of character or word n-grams.
- `pair` (default): unordered pairs of content-word stems (n characters) at most PAIR_WINDOW content words
  apart, written "a b" with a ≤ b. A copy keeps most of them (local reordering does not change an unordered
  pair), while unrelated texts share far fewer pairs than single stems: a single stem such as "comp" or "year"
  occurs in most news, a pair of them much more rarely. That keeps LSH buckets small as the index grows.
  A text with a single content word has that stem as its one shingle.

A `char`/`word` text shorter than one shingle yields a single shingle of the whole text; an empty text none.
Shingles are hashed as their UTF-8 bytes with xxh32. The kernel `shingle_hashes` computes exactly
`[xxh32(s) for s in shingles(...)]` without building strings.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numba
import numpy as np

import xxhash

from dedup.hashfunc import xxh32, xxh32_packed, xxh32_spans
from dedup.normalize import normalize_text

KINDS = {"char": 0, "word": 1, "stem": 2, "pair": 3}
PAIR_WINDOW = 2

STOPWORDS = sorted(set("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves said says say told mr mrs ms one two
new may might must shall per via yet don didn doesn isn wasn weren won wouldn couldn ll re ve
""".split()))


def hash_set(hashes: list[int]) -> np.ndarray:
    """A set of nonzero 64-bit hash values for `in_set`, without collisions: member h sits in slot
    (h * mult mod 2^64) >> shift, with an odd multiplier tried until each member has a slot of its own (0 marks
    an empty one). A lookup is one load and one comparison, without the branches of probing, which mispredicted
    on a third of a text's tokens. The last two entries hold `mult` and `shift`."""
    values = np.array(sorted(set(hashes)), dtype=np.uint64)
    assert values.all(), "0 marks an empty slot"
    rng = np.random.default_rng(0)
    bits = max(1, (16 * len(values)).bit_length())  # 16-32 slots a member: a multiplier fits in ~30 tries
    while True:
        shift = np.uint64(64 - bits)
        for _ in range(100):
            mult = rng.integers(0, 1 << 63, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            slots = (values * mult) >> shift
            if len(np.unique(slots)) == len(values):
                table = np.zeros((1 << bits) + 2, dtype=np.uint64)
                table[slots] = values
                table[-2:] = mult, shift
                return table
        bits += 1


@numba.njit(cache=True, nogil=True, inline="always")
def in_set(table: np.ndarray, h: np.uint64) -> bool:
    n = table.shape[0] - 2
    return (table[(h * table[n]) >> table[n + 1]] == h) & (h != 0)


# Stop words are recognised by the xxh32 of the whole token, in the kernel and in the reference alike.
_STOP_SET = frozenset(xxhash.xxh32_intdigest(w.encode()) for w in STOPWORDS)
STOP_HASHES = hash_set(sorted(_STOP_SET))


COMMON_STEMS_FILE = Path(__file__).with_name("data") / "common_stems.json"


@functools.cache
def common_stems(version: str) -> dict[int | str, frozenset[str]]:
    """The stems that `scripts/make_common_stems.py` found most common in news, under the version name an index
    records (`Params.common_stems`): of each length (keys 4, 5), and as the verifier reads words ("verify": 5
    characters by OCR class)."""
    d = json.loads(COMMON_STEMS_FILE.read_text(encoding="utf-8"))
    if d["version"] != version:
        raise ValueError(f"common stems {version!r} are not shipped with this dedup (it has {d['version']!r})")
    return {4: frozenset(d["stem4"]), 5: frozenset(d["stem5"]), "verify": frozenset(d["verify"])}


@functools.cache
def common_hashes(version: str, size: int) -> np.ndarray:
    """`hash_set` of the xxh32 of the common stems cut to `size` characters: the stems that are no anchors."""
    return hash_set(sorted(xxhash.xxh32_intdigest(s.encode()) for s in common_stems(version)[size]))


NO_ANCHORS = hash_set([1])  # a table for kernels when an index has no anchor bands (its contents are not read)


def anchors(text: str, size: int, version: str) -> list[bytes]:
    """Reference: a text's anchors, its content-word stems (`size` characters) that are not common stems."""
    common = common_stems(version)[size]
    return [s for s in shingles(text, "stem", size) if s.decode() not in common]


def content_words(norm: str) -> list[str]:
    """Tokens of a normalized text that are neither stop words nor single characters."""
    return [w for w in norm.split(" ") if len(w) >= 2 and xxhash.xxh32_intdigest(w.encode()) not in _STOP_SET]


def lead(norm: str, words: int) -> str:
    """The first `words` tokens of a normalized text: abridged copies keep the beginning of a story."""
    return " ".join(norm.split(" ")[:words]) if words else norm


def shingles(text: str, kind: str, size: int, lead_words: int = 0) -> list[bytes]:
    """Reference shingler over raw text (normalizes first); `lead_words` > 0 shingles only the lead."""
    norm = normalize_text(text)
    if lead_words:
        norm = lead(norm, lead_words)
    if not norm:
        return []
    if kind == "stem":
        return [w[:size].encode("utf-8") for w in content_words(norm)]
    if kind == "pair":
        stems = [w[:size] for w in content_words(norm)]
        if len(stems) == 1:
            return [stems[0].encode("utf-8")]
        return [(f"{a} {b}" if a <= b else f"{b} {a}").encode("utf-8")
                for i, a in enumerate(stems) for b in stems[i + 1:i + 1 + PAIR_WINDOW]]
    if kind == "char":
        units: list[str] = list(norm)
        sep = ""
    else:
        units = norm.split(" ")
        sep = " "
    if len(units) <= size:
        return [sep.join(units).encode("utf-8")]
    return [sep.join(units[i:i + size]).encode("utf-8") for i in range(len(units) - size + 1)]


@numba.njit(cache=True, nogil=True)
def utf8_encode(cps: np.ndarray, n: int, out: np.ndarray, starts: np.ndarray) -> int:
    """UTF-8 encode cps[:n] into `out`; starts[i] = byte offset of code point i, starts[n] = total length."""
    j = 0
    for i in range(n):
        c = cps[i]
        starts[i] = j
        if c < 0x80:
            out[j] = c
            j += 1
        elif c < 0x800:
            out[j] = 0xC0 | (c >> 6)
            out[j + 1] = 0x80 | (c & 0x3F)
            j += 2
        elif c < 0x10000:
            out[j] = 0xE0 | (c >> 12)
            out[j + 1] = 0x80 | ((c >> 6) & 0x3F)
            out[j + 2] = 0x80 | (c & 0x3F)
            j += 3
        else:
            out[j] = 0xF0 | (c >> 18)
            out[j + 1] = 0x80 | ((c >> 12) & 0x3F)
            out[j + 2] = 0x80 | ((c >> 6) & 0x3F)
            out[j + 3] = 0x80 | (c & 0x3F)
            j += 4
    starts[n] = j
    return j


@numba.njit(cache=True, nogil=True)
def lead_length(norm: np.ndarray, n: int, words: int) -> int:
    """Number of code points of norm[:n] that hold its first `words` tokens."""
    if words <= 0:
        return n
    seen = 0
    for i in range(n):
        if norm[i] == 32:
            seen += 1
            if seen == words:
                return i
    return n


@numba.njit(cache=True, nogil=True)
def _whole(buf: np.ndarray, end: int) -> np.ndarray:
    """The single shingle of a text shorter than one shingle: the whole text."""
    out = np.empty(1, dtype=np.uint32)
    out[0] = xxh32(buf, np.int64(0), end, 0)
    return out


@numba.njit(cache=True, nogil=True)
def _pair_hashes(norm: np.ndarray, buf: np.ndarray, starts: np.ndarray, cs: np.ndarray, ce: np.ndarray,
                 ct: np.ndarray, m: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """xxh32 of "a b" for every stem pair within `window` stems, a ≤ b by code points (= UTF-8 byte order), and
    the token number of each pair's later stem. Stems of at most 8 bytes (nearly all) are packed into 64-bit
    words once: big-endian and zero-padded, they compare as their bytes do, and little-endian, a pair of them
    shorter than 16 bytes is hashed from registers (`xxh32_packed`) instead of being copied byte by byte to a
    buffer (the pairs took a third of the kernel's time)."""
    out = np.empty(m * window, dtype=np.uint32)
    last = np.empty(m * window, dtype=np.int64)
    tmp = np.empty(8 * (ce[:m] - cs[:m]).max() + 1, dtype=np.uint8)
    nbytes = np.empty(m, dtype=np.int64)
    order = np.zeros(m, dtype=np.uint64)
    packed = np.zeros(m, dtype=np.uint64)
    for i in range(m):
        b0, b1 = starts[cs[i]], starts[ce[i]]
        nbytes[i] = b1 - b0
        if b1 - b0 <= 8:
            for z in range(b1 - b0):
                order[i] |= np.uint64(buf[b0 + z]) << np.uint64(56 - 8 * z)
                packed[i] |= np.uint64(buf[b0 + z]) << np.uint64(8 * z)
    k = 0
    for i in range(m):
        for j in range(i + 1, min(i + 1 + window, m)):
            if nbytes[i] <= 8 and nbytes[j] <= 8 and nbytes[i] + nbytes[j] <= 14:
                x, y = (i, j) if order[i] <= order[j] else (j, i)
                out[k] = _packed_pair(packed[x], nbytes[x], packed[y], nbytes[y])
                last[k] = ct[j]
                k += 1
                continue
            x, y = i, j
            la, lb = ce[i] - cs[i], ce[j] - cs[j]
            for q in range(min(la, lb) + 1):
                if q == la or q == lb:
                    if la > lb:
                        x, y = j, i
                    break
                if norm[cs[i] + q] != norm[cs[j] + q]:
                    if norm[cs[i] + q] > norm[cs[j] + q]:
                        x, y = j, i
                    break
            p = 0
            for z in range(starts[cs[x]], starts[ce[x]]):
                tmp[p] = buf[z]
                p += 1
            tmp[p] = 32
            p += 1
            for z in range(starts[cs[y]], starts[ce[y]]):
                tmp[p] = buf[z]
                p += 1
            out[k] = xxh32(tmp, np.int64(0), p, 0)
            last[k] = ct[j]
            k += 1
    return out[:k], last[:k]


@numba.njit(cache=True, nogil=True, inline="always")
def _packed_pair(a: np.uint64, la: int, b: np.uint64, lb: int) -> np.uint32:
    """xxh32 of the bytes of `a`, a space and the bytes of `b` (little-endian packed, la + lb ≤ 14, each ≤ 8)."""
    space = np.uint64(32)
    if la <= 6:
        shift = np.uint64(8 * (la + 1))
        lo = a | (space << np.uint64(8 * la)) | (b << shift)
        hi = b >> (np.uint64(64) - shift)
    elif la == 7:
        lo, hi = a | (space << np.uint64(56)), b
    else:
        lo, hi = a, space | (b << np.uint64(8))
    return xxh32_packed(lo, hi, la + 1 + lb)


@numba.njit(cache=True, nogil=True)
def shingle_hashes(norm: np.ndarray, n: int, kind: int, size: int, stop: np.ndarray, common: np.ndarray,
                   with_anchors: bool, window: int = PAIR_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """xxh32 of every shingle of the normalized code points norm[:n] (see `shingles`) and (`with_anchors`) of its
    anchors (see `whole_and_lead`)."""
    # np.int64(0), np.bool_(False), not 0 and False: numba compiles a kernel again for each literal argument
    # (three _shingles at the first run instead of one)
    hashes, _, _, anchor = _shingles(norm, n, kind, size, stop, window, np.int64(0), common, with_anchors)
    return hashes, anchor


@numba.njit(cache=True, nogil=True)
def whole_and_lead(norm: np.ndarray, n: int, kind: int, size: int, stop: np.ndarray, lead_words: int,
                   common: np.ndarray, with_anchors: bool, window: int = PAIR_WINDOW
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shingle hashes of the whole text and of its lead (first `lead_words` tokens), which of the whole's are
    the lead's (empty if the lead was shingled apart), and (`with_anchors`) the hashes of its anchors: its
    content-word stems that are not in the `common` table. The lead's `stem` and `pair` shingles are those of the
    whole text whose stems all lie in the lead, so they are picked, not hashed again (a quarter of the kernel's
    time), and the whole text's minima are the lead's continued over the other shingles; other kinds, and a
    lead with fewer than two stems, are shingled anew."""
    hashes, last, lead_stems, anchor = _shingles(norm, n, kind, size, stop, window, lead_words, common, with_anchors)
    ln = lead_length(norm, n, lead_words)
    if ln == n:
        return hashes, hashes, np.ones(hashes.shape[0], dtype=np.bool_), anchor
    if kind == 2 or (kind == 3 and lead_stems >= 2):
        in_lead = last < lead_words
        return hashes, hashes[in_lead], in_lead, anchor
    lead = _shingles(norm, ln, kind, size, stop, window, np.int64(0), common, np.bool_(False))[0]
    return hashes, lead, np.empty(0, dtype=np.bool_), anchor


@numba.njit(cache=True, nogil=True)
def _shingles(norm: np.ndarray, n: int, kind: int, size: int, stop: np.ndarray, window: int, lead_words: int,
              common: np.ndarray, with_anchors: bool) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(hashes, token number of each `stem`/`pair` shingle's last stem, stems among the first `lead_words`
    tokens, anchors: the xxh32 of each content-word stem not in `common` when `with_anchors` and the kind has
    stems, else none)."""
    none = np.empty(0, dtype=np.int64)
    no_anchors = np.empty(0, dtype=np.uint32)
    if n == 0:
        return np.empty(0, dtype=np.uint32), none, 0, no_anchors
    buf = np.empty(4 * n + 16, dtype=np.uint8)  # room for xxh32_spans to read past the last span
    starts = np.empty(n + 1, dtype=np.int64)
    utf8_encode(norm, n, buf, starts)
    if kind == 0:
        if n <= size:
            return _whole(buf, starts[n]), none, 0, no_anchors
        m = n - size + 1
        return xxh32_spans(buf, starts[:m], starts[size:size + m]), none, 0, no_anchors
    # token i spans code points [tok_s[i], tok_e[i]); written without branches, which mispredicted at most spaces
    tok_e = np.empty(n // 2 + 1, dtype=np.int64)
    t = 0
    for i in range(n):
        tok_e[t] = i
        t += norm[i] == 32
    tok_e[t] = n
    t += 1
    tok_s = np.empty(t, dtype=np.int64)
    tok_s[0] = 0
    tok_s[1:] = tok_e[:t - 1] + 1
    if kind == 2 or kind == 3:
        # content-word stems: code point ranges [cs, ce) of token ct
        cs = np.empty(t, dtype=np.int64)
        ce = np.empty(t, dtype=np.int64)
        ct = np.empty(t, dtype=np.int64)
        m = np.int64(0)  # not the literal 0: numba would also compile _pair_hashes for m = Literal[int](0)
        lead_stems = 0
        token_hashes = xxh32_spans(buf, starts[tok_s], starts[tok_e[:t]])
        for i in range(t):  # every token is written, and kept (m advances) if it is a content word
            s, e = tok_s[i], tok_e[i]
            keep = (e - s >= 2) & (not in_set(stop, np.uint64(token_hashes[i])))
            cs[m] = s
            ce[m] = min(s + size, e)
            ct[m] = i
            m += keep
            lead_stems += keep & (i < lead_words)
        stems = xxh32_spans(buf, starts[cs[:m]], starts[ce[:m]]) if kind == 2 or m <= 1 or with_anchors else no_anchors
        anchor = no_anchors
        if with_anchors:
            rare = np.empty(m, dtype=np.bool_)
            for i in range(m):
                rare[i] = not in_set(common, np.uint64(stems[i]))
            anchor = stems[rare]
        if kind == 2 or m <= 1:
            return stems, ct[:m], lead_stems, anchor
        hashes, last = _pair_hashes(norm, buf, starts, cs, ce, ct, m, window)
        return hashes, last, lead_stems, anchor
    if t <= size:
        return _whole(buf, starts[n]), none, 0, no_anchors
    m = t - size + 1
    out = np.empty(m, dtype=np.uint32)
    for i in range(m):
        out[i] = xxh32(buf, starts[tok_s[i]], starts[tok_e[i + size - 1]], 0)
    return out, none, 0, no_anchors
