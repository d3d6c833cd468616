"""Near-duplicate rows at a bounded cost.

Two rows are near duplicates when their normalised text (case folded, punctuation and spacing
dropped) is equal, or when a MinHash estimate of the Jaccard similarity of their word triples is
at least ``THRESHOLD``. The MinHash is "one permutation hashing" (Li, Owen & Zhang, NIPS 2012):
each triple is hashed once and falls into one of ``BINS`` bins by its low bits; a row's signature
is the minimum per bin. Banding the signature (two bins a band) finds candidate pairs without
comparing every pair; a bucket keeps at most ``BUCKET_CAP`` rows to compare new rows with, and a
row contributes at most ``MAX_SHINGLES`` triples, so the cost stays linear in the number of rows.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

BINS = 32
BAND = 2
THRESHOLD = 0.85
MAX_SHINGLES = 256
BUCKET_CAP = 64
_EMPTY = -1
_NON_WORD = re.compile(r"[\W_]+")


def digest(text: str) -> bytes:
    """16 bytes that stand for ``text`` in a set of seen texts (a collision: about 2^-64 a pair)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def normalise(text: str) -> str:
    """Case folded, every run of punctuation or spacing made one space."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def _signature(words: list[str]) -> list[int]:
    sig = [_EMPTY] * BINS
    for i in range(min(len(words) - 2, MAX_SHINGLES)):
        h = hash((words[i], words[i + 1], words[i + 2])) & 0xFFFFFFFFFFFFFFFF
        b, v = h & (BINS - 1), h >> 5
        if sig[b] == _EMPTY or v < sig[b]:
            sig[b] = v
    return sig


def _similarity(a: list[int], b: list[int]) -> float:
    used = [(x, y) for x, y in zip(a, b, strict=True) if x != _EMPTY or y != _EMPTY]
    if not used:
        return 0.0
    return sum(1 for x, y in used if x == y) / len(used)


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
    groups = _Groups()
    by_norm: dict[bytes, int] = {}
    signatures: dict[int, list[int]] = {}
    buckets: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        norm = normalise(text)
        key = digest(norm)
        if key in by_norm:
            groups.union(by_norm[key], i)
            continue
        by_norm[key] = i
        words = norm.split()
        if len(words) < 3:
            continue
        sig = _signature(words)
        signatures[i] = sig
        for band in range(0, BINS, BAND):
            pair = sig[band], sig[band + 1]
            if _EMPTY in pair:
                continue
            bucket = buckets[(band, *pair)]
            for j in bucket:  # at most BUCKET_CAP comparisons a band
                if (
                    groups.find(i) != groups.find(j)
                    and _similarity(sig, signatures[j]) >= THRESHOLD
                ):
                    groups.union(i, j)
            if len(bucket) < BUCKET_CAP:
                bucket.append(i)
    return groups.groups()
