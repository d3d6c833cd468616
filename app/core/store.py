"""The one SQLite store: jobs, metric points, alerts and cloud resources.

WAL mode so that the GUI can read while the receiver writes; the schema version lives in
``PRAGMA user_version`` and ``MIGRATIONS`` brings an older file up to date on open. Each call
that writes is one transaction (a whole metrics batch is one commit).

Thread-safe: one connection guarded by a lock, because the GUI thread, the receiver's handlers
and a launcher may all touch the store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from app.core import paths
from app.core.jobs import JOB_FIELDS, Job, JobNotFound, can_move, is_final
from trainer.events import METRIC_FIELDS, finite_or_none, json_safe

# The named columns of a metric point; anything else a trainer sends goes to ``extras`` (JSON).
METRIC_COLUMNS: tuple[str, ...] = (*METRIC_FIELDS, "timestamp")

_COLUMN_INDEX = {name: i for i, name in enumerate(METRIC_COLUMNS)}
_METRIC_COLUMN_SQL = ",\n    ".join(
    f"{c} TEXT" if c == "timestamp" else f"{c} REAL" for c in METRIC_COLUMNS
)


def _load_json(text: str) -> Any:
    """Stored JSON; a NaN or Infinity an older Tunedeck wrote in it reads as null."""
    return json.loads(text, parse_constant=lambda _constant: None)


def _dump_json(value: Any, *, sort_keys: bool = False) -> str:
    """Strict JSON (no NaN): non-finite floats at any depth become null."""
    return json.dumps(json_safe(value), allow_nan=False, sort_keys=sort_keys)


def _repair_non_json(db: sqlite3.Connection) -> None:
    """Rewrite extras and alert payloads that are not strict JSON (an older Tunedeck stored a
    NaN nested in an extra as the text NaN, on which json_patch fails)."""
    bad = db.execute(
        "SELECT job_id, step, extras FROM metrics "
        "WHERE extras IS NOT NULL AND NOT json_valid(extras)"
    ).fetchall()
    for job_id, step, extras in bad:
        try:
            fixed: str | None = _dump_json(_load_json(extras))
        except ValueError:  # not JSON at all: nothing of it can be read back
            fixed = None
        db.execute(
            "UPDATE metrics SET extras = ? WHERE job_id = ? AND step = ?", (fixed, job_id, step)
        )
    bad = db.execute("SELECT id, payload FROM alerts WHERE NOT json_valid(payload)").fetchall()
    for row_id, payload in bad:
        try:
            fixed_payload = _dump_json(_load_json(payload), sort_keys=True)
        except ValueError:
            fixed_payload = "{}"
        # OR REPLACE: once repaired, it may equal an alert stored since; one of them stays
        db.execute("UPDATE OR REPLACE alerts SET payload = ? WHERE id = ?", (fixed_payload, row_id))


Migration = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: the first schema
    f"""
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    method TEXT NOT NULL,
    model TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT 'local',
    status TEXT NOT NULL DEFAULT 'queued',
    config_json TEXT NOT NULL DEFAULT '{{}}',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    error TEXT,
    output_dir TEXT,
    log_path TEXT,
    pid INTEGER,
    pid_started_at REAL,
    exit_code INTEGER,
    total_steps INTEGER,
    current_step INTEGER,
    last_loss REAL,
    user_id TEXT NOT NULL DEFAULT 'local',
    token_hash TEXT
);
CREATE INDEX jobs_created ON jobs(created_at);
CREATE TABLE metrics (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    {_METRIC_COLUMN_SQL},
    extras TEXT,
    received_at REAL NOT NULL,
    PRIMARY KEY (job_id, step)
) WITHOUT ROWID;
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (job_id, payload)
);
CREATE TABLE cloud_resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    resource_id TEXT,
    job_id TEXT REFERENCES jobs(id) ON DELETE SET NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    cost_per_hour REAL,
    terminated_at REAL
);
CREATE INDEX cloud_resources_job ON cloud_resources(job_id);
""",
    # 2: a cloud job's pod, phase, time and money per phase, and how far its event log was read
    """
CREATE TABLE cloud_runs (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    resource_row INTEGER REFERENCES cloud_resources(id),
    pod_id TEXT,
    phase TEXT NOT NULL DEFAULT 'provisioning',
    phase_started_at REAL,
    phases TEXT NOT NULL DEFAULT '{}',
    last_seq INTEGER NOT NULL DEFAULT 0,
    cost_per_hour REAL,
    updated_at REAL
);
""",
    # 3: a job found by its token's hash (the receiver's credential check)
    "CREATE INDEX jobs_token_hash ON jobs(token_hash)",
    # 4: stored JSON is strict JSON
    _repair_non_json,
    # 5: the planner's estimate of a job's peak GPU memory, kept beside the measured peak
    """
CREATE TABLE IF NOT EXISTS job_plans (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    planned_peak_gb REAL NOT NULL,
    target_gpu TEXT,
    target_memory_gb REAL,
    fits INTEGER,
    parts TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
""",
)
SCHEMA_VERSION = len(MIGRATIONS)

_UPDATABLE_JOB_FIELDS = frozenset(JOB_FIELDS) - {"id", "created_at"}


class StoreError(RuntimeError):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class CloudResource:
    id: int
    provider: str
    resource_id: str | None
    job_id: str | None
    status: str
    created_at: float
    cost_per_hour: float | None = None
    terminated_at: float | None = None


_RESOURCE_FIELDS = tuple(f.name for f in fields(CloudResource))


@dataclass(frozen=True)
class CloudRun:
    """A cloud job's bookkeeping: its pod, its phase, and ``phases`` = {phase: {"seconds",
    "dollars"}} for the phases already over; ``last_seq`` = the last event-log line ingested."""

    job_id: str
    resource_row: int | None = None
    pod_id: str | None = None
    phase: str = "provisioning"
    phase_started_at: float | None = None
    phases: str = "{}"
    last_seq: int = 0
    cost_per_hour: float | None = None
    updated_at: float | None = None


_CLOUD_RUN_FIELDS = tuple(f.name for f in fields(CloudRun))


@dataclass(frozen=True)
class MetricsResult:
    """What one ``add_metrics`` call did."""

    inserted: int  # points for steps not seen before
    merged: int  # points that filled in a step already stored
    last_step: int | None


def _sql(value: Any) -> Any:
    """A value SQLite can bind: text with lone surrogates repaired, an integer past 64 bits
    dropped. Whatever a client sends must never make a query raise."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return None
    return value


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"cannot open the job store {self.path}: {err}",
                "Another Tunedeck may hold it, or the file is damaged; move it aside to start "
                "with an empty store.",
            ) from err

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @property
    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the job store {self.path} has schema version {version}, newer than this "
                f"Tunedeck knows ({SCHEMA_VERSION})",
                "Update Tunedeck, or point TUNEDECK_DATA_DIR at another folder.",
            )
        for number in range(version, SCHEMA_VERSION):
            migration = MIGRATIONS[number]
            with self._transaction() as db:
                if callable(migration):
                    migration(db)
                else:
                    for statement in migration.split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(
        self,
        *,
        name: str,
        method: str,
        model: str,
        config_json: str = "{}",
        target: str = "local",
        job_id: str | None = None,
        output_dir: str | None = None,
        total_steps: int | None = None,
        user_id: str = "local",
    ) -> Job:
        """A new queued job. ``config_json`` must already be free of secrets."""
        job = Job(
            id=job_id or new_job_id(),
            name=name,
            method=method,
            model=model,
            target=target,
            status="queued",
            config_json=config_json,
            created_at=time.time(),
            output_dir=output_dir,
            total_steps=total_steps,
            user_id=user_id,
        )
        values = {f: getattr(job, f) for f in JOB_FIELDS}
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._transaction() as db:
            db.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", list(values.values()))
        return job

    def get_job(self, job_id: str) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (_sql(job_id),))
        return _job(rows[0]) if rows else None

    def token_in_use(self, token_hash: str) -> bool:
        """True when some job's token has this hash (the receiver asks it of a bearer token
        whose body names no job it can read)."""
        if not token_hash:
            return False
        rows = self._query("SELECT 1 FROM jobs WHERE token_hash = ? LIMIT 1", (token_hash,))
        return bool(rows)

    def require_job(self, job_id: str) -> Job:
        job = self.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def find_job(self, id_or_prefix: str) -> Job:
        """A job by its id or an unambiguous start of it (what a user types on the CLI)."""
        exact = self.get_job(id_or_prefix)
        if exact is not None:
            return exact
        escaped = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query(
            "SELECT * FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",)
        )
        if len(rows) != 1:
            raise JobNotFound(id_or_prefix)
        return _job(rows[0])

    def list_jobs(self, search: str | None = None, status: str | None = None) -> list[Job]:
        """Newest first. ``search`` matches name, model, method or id (case-insensitive)."""
        sql, args = "SELECT * FROM jobs WHERE 1=1", []
        if status:
            sql += " AND status = ?"
            args.append(status)
        if search:
            sql += " AND (name LIKE ? OR model LIKE ? OR method LIKE ? OR id LIKE ?)"
            args += [f"%{search}%"] * 4
        sql += " ORDER BY created_at DESC"
        return [_job(r) for r in self._query(sql, args)]

    def update_job(self, job_id: str, **changes: Any) -> Job:
        """Set plain fields. Status goes through ``set_status`` (it has rules)."""
        unknown = set(changes) - _UPDATABLE_JOB_FIELDS
        if unknown or "status" in changes:
            bad = ", ".join(sorted(unknown | ({"status"} & set(changes))))
            raise ValueError(f"update_job cannot set {bad}; status goes through set_status")
        with self._transaction() as db:
            self._update(db, job_id, changes)
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row)

    def set_status(self, job_id: str, status: str, error: str | None = None) -> Job:
        """Move a job to ``status`` if allowed; a final status never changes. Returns the job."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            job = _job(row)
            changes = _status_changes(job, status, error, time.time())
            if changes:
                self._update(db, job_id, changes)
                row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row)

    def reopen_job(self, job_id: str) -> Job:
        """Put a finished job back in the queue, to resume it as the same job."""
        with self._transaction() as db:
            self._update(
                db,
                job_id,
                {
                    "status": "queued",
                    "ended_at": None,
                    "error": None,
                    "exit_code": None,
                    "pid": None,
                    "pid_started_at": None,
                },
            )
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row)

    def delete_job(self, job_id: str) -> None:
        """Remove a job with its metrics and alerts (its cloud resources stay, unlinked)."""
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    @staticmethod
    def _update(db: sqlite3.Connection, job_id: str, changes: Mapping[str, Any]) -> None:
        if not changes:
            return
        assigns = ", ".join(f"{k} = ?" for k in changes)
        values = [_sql(v) for v in changes.values()]
        cur = db.execute(f"UPDATE jobs SET {assigns} WHERE id = ?", [*values, _sql(job_id)])
        if cur.rowcount == 0:
            raise JobNotFound(job_id)

    # -- metrics -------------------------------------------------------------------------------

    def add_metrics(self, job_id: str, points: Iterable[Mapping[str, Any]]) -> MetricsResult:
        """Store points; a step already stored is filled in by the new non-null fields.

        Also moves the job's ``current_step`` and ``last_loss`` forward. One transaction.
        """
        now = time.time()
        job_id = _sql(job_id)
        rows = []
        last_step: int | None = None
        last_loss: tuple[float, int] | None = None  # (loss, step)
        for point in points:
            step = int(point["step"])
            # one pass over the fields a point has (a few), not over every column
            values: list[Any] = [None] * len(METRIC_COLUMNS)
            extras: dict[str, Any] = {}
            for key, value in point.items():
                if value is None or key == "step":
                    continue
                column = _COLUMN_INDEX.get(key)
                if column is None:
                    extras[key] = value
                else:  # SQLite has no NaN: a non-finite figure is stored as missing
                    values[column] = _sql(finite_or_none(value))
            rows.append((job_id, step, *values, _dump_json(extras) if extras else None, now))
            last_step = step if last_step is None else max(last_step, step)
            loss = values[_COLUMN_INDEX["train_loss"]]
            if loss is not None and (last_loss is None or step >= last_loss[1]):
                last_loss = (float(loss), step)
        if not rows:
            return MetricsResult(0, 0, None)
        with self._transaction() as db:
            # one statement moves the job on: a loss older than the newest step already seen
            # does not replace the last loss; no row changed means no such job
            loss_value, loss_step = last_loss if last_loss is not None else (None, -1)
            cur = db.execute(
                "UPDATE jobs SET "
                "last_loss = CASE WHEN ?1 IS NOT NULL AND coalesce(current_step, -1) <= ?2 "
                "THEN ?1 ELSE last_loss END, "
                "current_step = max(coalesce(current_step, -1), ?3) WHERE id = ?4",
                (loss_value, loss_step, last_step, job_id),
            )
            if cur.rowcount == 0:
                raise JobNotFound(job_id)
            steps = sorted({r[1] for r in rows})
            known = _count_known_steps(db, job_id, steps)
            db.executemany(_UPSERT_METRIC, rows)
        inserted = len(steps) - known
        return MetricsResult(inserted, len(rows) - inserted, last_step)

    def metrics(self, job_id: str, after_step: int | None = None) -> list[dict[str, Any]]:
        """Rows ordered by step: ``step``, the non-null named fields and the extras."""
        sql = f"SELECT step, {', '.join(METRIC_COLUMNS)}, extras FROM metrics WHERE job_id = ?"
        args: list[Any] = [_sql(job_id)]
        if after_step is not None:
            sql += " AND step > ?"
            args.append(after_step)
        out = []
        for row in self._query(sql + " ORDER BY step", args):
            point: dict[str, Any] = _load_json(row["extras"]) if row["extras"] else {}
            point.update({c: row[c] for c in METRIC_COLUMNS if row[c] is not None})
            point["step"] = row["step"]
            out.append(point)
        return out

    def metric_count(self, job_id: str) -> int:
        rows = self._query("SELECT count(*) FROM metrics WHERE job_id = ?", (_sql(job_id),))
        return int(rows[0][0])

    # -- alerts --------------------------------------------------------------------------------

    def add_alert(self, alert: Mapping[str, Any]) -> bool:
        """Store an alert (``type`` and ``job_id`` required). False when the very same alert
        was stored already (a trainer resending after a lost response)."""
        payload = _dump_json(
            {k: v for k, v in json_safe(dict(alert)).items() if v is not None}, sort_keys=True
        )
        job_id = _sql(alert["job_id"])
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise JobNotFound(str(job_id))
            cur = db.execute(
                "INSERT OR IGNORE INTO alerts (job_id, type, received_at, payload) "
                "VALUES (?, ?, ?, ?)",
                (job_id, _sql(alert["type"]), time.time(), payload),
            )
        return cur.rowcount == 1

    def alerts(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Oldest first; each the alert as sent plus ``id`` and ``received_at``."""
        sql, args = "SELECT id, received_at, payload FROM alerts", []
        if job_id is not None:
            sql += " WHERE job_id = ?"
            args.append(_sql(job_id))
        out = []
        for row in self._query(sql + " ORDER BY id", args):
            alert = _load_json(row["payload"])
            alert["id"] = row["id"]
            alert["received_at"] = row["received_at"]
            out.append(alert)
        return out

    # -- cloud resources -----------------------------------------------------------------------

    def record_resource(
        self,
        *,
        provider: str,
        status: str,
        resource_id: str | None = None,
        job_id: str | None = None,
        cost_per_hour: float | None = None,
    ) -> CloudResource:
        """Write a resource down, before asking the provider for it (so that none is forgotten)."""
        now = time.time()
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO cloud_resources (provider, resource_id, job_id, status, created_at, "
                "cost_per_hour) VALUES (?, ?, ?, ?, ?, ?)",
                (provider, resource_id, job_id, status, now, cost_per_hour),
            )
            row_id = int(cur.lastrowid or 0)
        return CloudResource(row_id, provider, resource_id, job_id, status, now, cost_per_hour)

    def update_resource(self, row_id: int, **changes: Any) -> CloudResource:
        unknown = set(changes) - (set(_RESOURCE_FIELDS) - {"id", "created_at"})
        if unknown:
            raise ValueError(f"update_resource cannot set {', '.join(sorted(unknown))}")
        with self._transaction() as db:
            if changes:
                assigns = ", ".join(f"{k} = ?" for k in changes)
                db.execute(
                    f"UPDATE cloud_resources SET {assigns} WHERE id = ?",
                    [*changes.values(), row_id],
                )
            row = db.execute("SELECT * FROM cloud_resources WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            raise LookupError(f"no cloud resource {row_id} in the store")
        return _resource(row)

    def get_resource(self, row_id: int) -> CloudResource | None:
        rows = self._query("SELECT * FROM cloud_resources WHERE id = ?", (row_id,))
        return _resource(rows[0]) if rows else None

    def list_resources(
        self, *, provider: str | None = None, job_id: str | None = None, active: bool = False
    ) -> list[CloudResource]:
        """Oldest first; ``active`` keeps those not terminated yet."""
        sql, args = "SELECT * FROM cloud_resources WHERE 1=1", []
        if provider:
            sql += " AND provider = ?"
            args.append(provider)
        if job_id:
            sql += " AND job_id = ?"
            args.append(job_id)
        if active:
            sql += " AND terminated_at IS NULL"
        return [_resource(r) for r in self._query(sql + " ORDER BY id", args)]

    # -- cloud runs ----------------------------------------------------------------------------

    # -- the planner's estimate (app.core.plan_records reads and writes it) -------------------

    def save_job_plan(
        self,
        job_id: str,
        *,
        planned_peak_gb: float,
        target_gpu: str | None,
        target_memory_gb: float | None,
        fits: bool | None,
        parts: Mapping[str, float],
    ) -> None:
        """Keep (or replace) the estimate a job was launched with."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO job_plans (job_id, planned_peak_gb, target_gpu, "
                "target_memory_gb, fits, parts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _sql(job_id),
                    planned_peak_gb,
                    target_gpu,
                    target_memory_gb,
                    None if fits is None else int(fits),
                    json.dumps(dict(parts), allow_nan=False),
                    time.time(),
                ),
            )

    def job_plan(self, job_id: str) -> dict[str, Any] | None:
        """The stored estimate of a job (``parts`` decoded), or None."""
        rows = self._query("SELECT * FROM job_plans WHERE job_id = ?", (_sql(job_id),))
        if not rows:
            return None
        plan = dict(rows[0])
        plan["parts"] = json.loads(plan["parts"])
        plan["fits"] = None if plan["fits"] is None else bool(plan["fits"])
        return plan

    def peak_gpu_memory(self, job_id: str) -> tuple[float | None, float | None]:
        """The largest allocated and reserved GPU memory (GB) among a job's metric points."""
        row = self._query(
            "SELECT max(gpu_memory_allocated_gb), max(gpu_memory_reserved_gb) FROM metrics "
            "WHERE job_id = ?",
            (_sql(job_id),),
        )[0]
        return row[0], row[1]

    def get_cloud_run(self, job_id: str) -> CloudRun | None:
        rows = self._query("SELECT * FROM cloud_runs WHERE job_id = ?", (_sql(job_id),))
        return CloudRun(**{f: rows[0][f] for f in _CLOUD_RUN_FIELDS}) if rows else None

    def save_cloud_run(self, job_id: str, **changes: Any) -> CloudRun:
        """Create or update a job's cloud bookkeeping (one transaction)."""
        unknown = set(changes) - (set(_CLOUD_RUN_FIELDS) - {"job_id", "updated_at"})
        if unknown:
            raise ValueError(f"save_cloud_run cannot set {', '.join(sorted(unknown))}")
        changes = {**changes, "updated_at": time.time()}
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO cloud_runs (job_id) VALUES (?)", (_sql(job_id),))
            assigns = ", ".join(f"{k} = ?" for k in changes)
            db.execute(
                f"UPDATE cloud_runs SET {assigns} WHERE job_id = ?",
                [*(_sql(v) for v in changes.values()), _sql(job_id)],
            )
            row = db.execute("SELECT * FROM cloud_runs WHERE job_id = ?", (job_id,)).fetchone()
        return CloudRun(**{f: row[f] for f in _CLOUD_RUN_FIELDS})


_UPSERT_METRIC = (
    f"INSERT INTO metrics (job_id, step, {', '.join(METRIC_COLUMNS)}, extras, received_at) "
    f"VALUES (?, ?, {', '.join('?' for _ in METRIC_COLUMNS)}, ?, ?) "
    "ON CONFLICT (job_id, step) DO UPDATE SET "
    + ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in METRIC_COLUMNS)
    + ", extras = CASE WHEN excluded.extras IS NULL THEN extras WHEN extras IS NULL THEN "
    "excluded.extras ELSE json_patch(extras, excluded.extras) END"
)


def _count_known_steps(db: sqlite3.Connection, job_id: str, steps: list[int]) -> int:
    known = 0
    # bounded by SQLite's variable limit
    for i in range(0, len(steps), 500):
        chunk = steps[i : i + 500]
        marks = ", ".join("?" for _ in chunk)
        known += db.execute(
            f"SELECT count(*) FROM metrics WHERE job_id = ? AND step IN ({marks})",
            (job_id, *chunk),
        ).fetchone()[0]
    return int(known)


def _status_changes(job: Job, status: str, error: str | None, now: float) -> dict[str, Any]:
    if not can_move(job.status, status) or job.status == status:
        return {}
    changes: dict[str, Any] = {"status": status}
    if status == "running" and job.started_at is None:
        changes["started_at"] = now
    if is_final(status):
        changes["ended_at"] = now
        if error is not None:
            changes["error"] = error
    return changes


def _job(row: sqlite3.Row) -> Job:
    return Job(**{f: row[f] for f in JOB_FIELDS})


def _resource(row: sqlite3.Row) -> CloudResource:
    return CloudResource(**{f: row[f] for f in _RESOURCE_FIELDS})


def new_job_id() -> str:
    """Short enough to type, random enough not to collide: ``20261128-1230-3f9a2c``."""
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]
