"""Near-duplicate rows at a bounded cost.

Two rows are near duplicates when their normalised text (case folded, punctuation and spacing
dropped) is equal, or when a MinHash estimate of the Jaccard similarity of their word triples is
at least ``THRESHOLD``. The MinHash is "one permutation hashing" (Li, Owen & Zhang, NIPS 2012):
each triple is hashed once and falls into one of ``BINS`` bins by its low bits; a row's signature
is the minimum per bin (numpy, a chunk of rows at a time). Banding the signature (four bins a band)
finds candidate pairs without comparing every pair: a row whose band equals others' is compared
with at most ``BUCKET_CAP`` distinct earlier rows of that band, and a row contributes at most
``MAX_SHINGLES`` triples, so the cost stays linear in the number of rows.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import defaultdict
from typing import Any

BINS = 32
BAND = 4  # bins a band: a pair at 0.85 shares one of 8 bands 99.7% of the time
THRESHOLD = 0.85
MAX_SHINGLES = 256
BUCKET_CAP = 64
CHUNK_ROWS = 10_000
_EMPTY = -1
_NON_WORD = re.compile(r"[\W_]+")
# odd 64-bit multipliers that mix three word hashes into one triple hash
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)


def digest(text: str) -> bytes:
    """16 bytes that stand for ``text`` in a set of seen texts (a collision: about 2^-64 a pair)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# ASCII text (most rows) takes str.translate, several times faster than the regular expression
_ASCII_NON_WORD = str.maketrans(
    {chr(c): " " for c in range(128) if not (chr(c).isalnum() and chr(c).isascii())}
)


def normalise(text: str) -> str:
    """Case folded, every run of punctuation or spacing made one space."""
    return normalised_words(text)[0]


def normalised_words(text: str) -> tuple[str, list[str]]:
    """``normalise(text)`` and its words, splitting the text once."""
    if text.isascii():
        words = text.lower().translate(_ASCII_NON_WORD).split()
        return " ".join(words), words
    norm = _NON_WORD.sub(" ", text.casefold()).strip()
    return norm, norm.split()


def signatures(word_lists: list[list[str]]) -> Any:
    """One row of ``BINS`` minimums per word list (int64; ``_EMPTY`` for a bin no triple hit)."""
    import numpy as np

    out = np.full((len(word_lists), BINS), _EMPTY, dtype=np.int64)
    for start in range(0, len(word_lists), CHUNK_ROWS):
        chunk = word_lists[start : start + CHUNK_ROWS]
        hashes: list[int] = []
        owners: list[int] = []
        for row, words in enumerate(chunk):
            words = words[: MAX_SHINGLES + 2]
            if len(words) < 3:
                continue
            # crc32, not hash(): str hashes change with every process, and the same file must
            # give the same findings every time (C functions both: no Python call a word)
            hashes.extend(map(zlib.crc32, map(str.encode, words)))
            owners.extend([row] * len(words))
        if not hashes:
            continue
        h = np.array(hashes, dtype=np.int64).view(np.uint64)
        owner = np.array(owners, dtype=np.int64)
        with np.errstate(over="ignore"):  # wrapping multiplication is the point
            triple = h[:-2] * np.uint64(_MIX[0]) ^ h[1:-1] * np.uint64(_MIX[1])
            triple ^= h[2:] * np.uint64(_MIX[2])
        same_row = owner[:-2] == owner[2:]  # a triple inside one row
        triple, row_of = triple[same_row], owner[:-2][same_row]
        bins = (triple & np.uint64(BINS - 1)).astype(np.int64)
        values = (triple >> np.uint64(10)).astype(np.int64)  # < 2^54: never _EMPTY
        flat = np.full(len(chunk) * BINS, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(flat, row_of * BINS + bins, values)
        flat[flat == np.iinfo(np.int64).max] = _EMPTY
        out[start : start + len(chunk)] = _densified(flat.reshape(len(chunk), BINS))
    return out


def _densified(sig: Any) -> Any:
    """Empty bins filled from the next filled bin to the right, circularly, tagged with the
    distance ("rotation" densification, Shrivastava & Li, ICML 2014): a short text hits few of the
    bins, and without it two short near copies would seldom share a whole band."""
    import numpy as np

    out = sig.copy()
    for step in range(1, BINS):
        empty = out == _EMPTY
        if not empty.any():
            break
        moved = np.roll(sig, -step, axis=1)
        take = empty & (moved != _EMPTY)
        out[take] = moved[take] + (np.int64(step) << np.int64(54))  # below 2^59 in all
    return out


class _Groups:
    """Union-find over row indexes."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        root = self.parent.setdefault(i, i)
        while root != self.parent[root]:
            root = self.parent[root]
        while i != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i in self.parent:
            out[self.find(i)].append(i)
        return sorted((sorted(g) for g in out.values() if len(g) > 1), key=lambda g: g[0])


def near_duplicate_groups(texts: list[str]) -> list[list[int]]:
    """Groups (sorted index lists, two or more) of texts that are near duplicates."""
    import numpy as np

    groups = _Groups()
    by_norm: dict[bytes, int] = {}
    kept: list[int] = []  # texts with a new normalised form: the MinHash candidates
    words: list[list[str]] = []  # a chunk's words at a time: all of them would cost gigabytes
    parts = []
    for i, text in enumerate(texts):
        norm, norm_words = normalised_words(text)
        key = digest(norm)
        if key in by_norm:
            groups.union(by_norm[key], i)
            continue
        by_norm[key] = i
        kept.append(i)
        words.append(norm_words)
        if len(words) == CHUNK_ROWS:
            parts.append(signatures(words))
            words = []
    parts.append(signatures(words))
    sig = np.concatenate(parts)
    for band in range(0, BINS, BAND):
        pair = sig[:, band : band + BAND]
        full = np.flatnonzero((pair != _EMPTY).all(axis=1))
        if len(full) < 2:
            continue
        keys = pair[full]
        order = np.lexsort(keys.T[::-1])
        keys, rows = keys[order], full[order]
        starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)])
        ends = np.r_[starts[1:], len(rows)]
        for lo, hi in zip(starts, ends, strict=True):
            if hi - lo < 2:
                continue
            # each row joins the first of the band's first BUCKET_CAP distinct rows it resembles,
            # or becomes one of them: near copies cost one comparison, strangers at most the cap
            reps: list[int] = []
            for me in np.sort(rows[lo:hi]):
                if reps:
                    a, b = sig[reps], sig[me]
                    used = (a != _EMPTY) | (b != _EMPTY)
                    same = ((a == b) & used).sum(axis=1) / np.maximum(used.sum(axis=1), 1)
                    hit = np.flatnonzero(same >= THRESHOLD)
                    if len(hit):
                        groups.union(kept[reps[int(hit[0])]], kept[int(me)])
                        continue
                if len(reps) < BUCKET_CAP:
                    reps.append(int(me))
    return groups.groups()
