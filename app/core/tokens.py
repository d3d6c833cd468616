"""Secrets the receiver checks: a random token per job, and the install's API key.

Only a hash of a job token is stored (SQLite is not a secret store); the token itself lives in
the trainer's environment and nowhere else. Comparisons take constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_job_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_api_key() -> str:
    """A fresh API key (the CLI makes one per run; the GUI keeps one in the keyring)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def _bytes(secret: str) -> bytes:
    # a header byte that is not UTF-8 arrives as a lone surrogate: it must compare (unequal),
    # never raise
    return secret.encode("utf-8", "surrogatepass")


def hash_token(token: str) -> str:
    return hashlib.sha256(_bytes(token)).hexdigest()


def token_matches(token: str, token_hash: str | None) -> bool:
    """True when ``token`` hashes to ``token_hash``; False for a job without a token."""
    if not token_hash:
        return False
    return hmac.compare_digest(hash_token(token), token_hash)


def key_matches(given: str, expected: str) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(_bytes(given), _bytes(expected))
