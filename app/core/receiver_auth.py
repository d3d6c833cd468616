"""Who may post to the receiver or read from it: the checks, in the order they are made.

A caller proves itself with the install's API key (``X-API-Key``) or with a job's own token
(``Authorization: Bearer``). The key opens every job; a token opens only its own job. Both are
compared in constant time (``app.core.tokens``), and a token is checked against the job it names
even when that job does not exist (against a hash no token has), so that an unknown job and a
wrong token take the same path and get the same answer.

Order of a POST (metrics, or an alert):

1. No credential at all (no bearer token, and for alerts no matching key): 401.
2. The body is read (it must be, to learn which job it is for): 408 when it does not arrive in
   time, whoever asks.
3. A body over the size limit (413, sent or once inflated), one that does not decode (400) or
   does not fit the wire model (422 naming the field) is told so only to a caller that
   ``may_hear_about_bodies``: one holding the install key or a token of some job. Anyone else
   gets the same 401 as in step 1, whatever the body.
4. The token does not open the job the body names (wrong token, another job's token, no such
   job): 401, the very same response whatever the reason.
5. Metrics for a job that ended too long ago: 410 ``job_closed``. An unknown job with the
   install key: 404 (the only caller that learns a job does not exist).
6. NaN/Infinity anywhere in the body: 422 naming the field (the ingest path refuses it).

A read (``GET /api/jobs/{job_id}/...``) follows 1 and 4: 404 only with the install key.
"""

from __future__ import annotations

from aiohttp import web

from app.core.jobs import Job
from app.core.store import Store
from app.core.tokens import hash_token, key_matches, token_matches

# What a bearer token is compared with when its job does not exist or has no token: a value
# no token hashes to (a SHA-256 hex digest never starts with a letter past f), so the check
# costs the same and always fails.
_NO_JOB_HASH = "z" * 64


def bearer(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def holds_install_key(request: web.Request, api_key: str) -> bool:
    given = request.headers.get("X-API-Key")
    return given is not None and key_matches(given, api_key)


def token_opens(store: Store, token: str, job_id: str) -> Job | None:
    """The job when ``token`` is its token; None for a wrong token and for no such job alike."""
    job = store.get_job(job_id)
    expected = job.token_hash if job is not None and job.token_hash else _NO_JOB_HASH
    if token_matches(token, expected) and job is not None:
        return job
    return None


def may_hear_about_bodies(store: Store, token: str | None, keyed: bool) -> bool:
    """Whether a caller is told what is wrong with its body (step 3 above)."""
    return keyed or (token is not None and token_of_some_job(store, token))


def token_of_some_job(store: Store, token: str) -> bool:
    """True when ``token`` is the token of a job in the store (looked up by its hash, so the
    time taken depends on the hash, never on how much of a token a guess got right)."""
    return store.token_in_use(hash_token(token))
