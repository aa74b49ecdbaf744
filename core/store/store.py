"""The run store: one SQLite database (WAL mode) for runs and metrics, one folder per run.

The CLI, the dashboard, notebooks and background trainers all open the same store, each with
its own short-lived connections, so several processes can read while a trainer writes.

Layout under ``CONVGAN_HOME`` (default ``~/.convgan``)::

    runs.db                 runs, metrics, tags and notes (schema version in PRAGMA user_version)
    runs/<run_id>/          checkpoints/, samples/, train.log, train_state.json
    cache/                  parsed datasets, JAX compilation cache
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import secrets
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core.common.errors import RunNotFound, UserError

STATUSES = ("queued", "running", "completed", "stopped", "failed", "interrupted", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
# SQLite waits this long for another writer's lock before giving up; writes are tiny, so a
# reader or writer never sees "database is locked" in practice.
BUSY_TIMEOUT_MS = 60_000

# The schema is versioned with SQLite's ``PRAGMA user_version``: _MIGRATIONS[i] takes a store
# from version i to i + 1. Version 0 is a new file or a store written before versioning, whose
# tables step 1 creates only where missing; a released step is never edited, only appended to.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: runs and metrics, as every store before versioning has them
        """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    host TEXT,
    heartbeat REAL,
    device TEXT,
    versions TEXT,
    code_version TEXT,
    progress TEXT,
    metrics TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0
)""",
        "CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created)",
        """CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER,
    name TEXT NOT NULL,
    value REAL,
    time REAL NOT NULL,
    PRIMARY KEY (run_id, scope, step, name)
) WITHOUT ROWID""",
    ),
    (  # 2: a free-text note per run, and tags
        "ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        """CREATE TABLE run_tags (
    run_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
) WITHOUT ROWID""",
        "CREATE INDEX run_tags_tag ON run_tags(tag, run_id)",
    ),
    (  # 3: the GPUs a run was given, comma-separated as CUDA_VISIBLE_DEVICES takes them
        "ALTER TABLE runs ADD COLUMN gpus TEXT",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
TAG_MAX_LENGTH = 40  # characters
NOTE_MAX_LENGTH = 10_000  # characters

_JSON_FIELDS = ("config", "versions", "progress", "metrics")
_UPDATABLE = {
    "status", "error", "started", "finished", "pid", "host", "heartbeat", "device", "versions",
    "code_version", "progress", "metrics", "stop_requested", "config", "gpus",
}


class StoreError(UserError):
    """The store's database cannot be opened by this code (newer schema, not a database)."""


class InvalidAnnotation(UserError):
    """A tag or note that the store does not accept."""


def default_home() -> Path:
    """Where the store lives: ``$CONVGAN_HOME`` or ``~/.convgan``."""
    return Path(os.environ.get("CONVGAN_HOME") or Path.home() / ".convgan").expanduser()


def iso(timestamp: float | None) -> str | None:
    """Seconds since the epoch as an ISO 8601 UTC string (None stays None)."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RunStore:
    """Runs, their metrics and their files.

    Args:
        home: folder of the store; default :func:`default_home`. Created if missing.
    """

    def __init__(self, home: str | Path | None = None):
        self.home = Path(home).expanduser() if home else default_home()
        self.runs_dir = self.home / "runs"
        self.cache_dir = self.home / "cache"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.home / "runs.db"
        try:
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"cannot open the run store {self.db_path}: {err}") from None

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`, one step per transaction.

        Raises:
            StoreError: the file was written by newer code; it is left as it is.
        """
        with self._connect() as conn:
            if self._check_version(conn) == SCHEMA_VERSION:
                return
            while True:
                conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
                try:
                    version = self._check_version(conn)
                    if version == SCHEMA_VERSION:
                        conn.execute("COMMIT")
                        return
                    for statement in _MIGRATIONS[version]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version + 1}")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")

    def _check_version(self, conn: sqlite3.Connection) -> int:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the run store {self.db_path} has schema version {version}, newer than this code's "
                f"{SCHEMA_VERSION}: update ConvGAN Studio to open it, or set CONVGAN_HOME to another folder")
        return version

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front (``BEGIN IMMEDIATE``).

        Use it for read-modify-write sequences, such as claiming a queue slot.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ---- runs -------------------------------------------------------------------------------

    def create_run(self, *, family: str, model: str, dataset: str, config: dict[str, Any],
                   seed: int | None = None, status: str = "queued") -> str:
        """Add a run and create its folder.

        Args:
            family: ``classifier`` or ``gan``.
            model: model preset name.
            dataset: dataset spec.
            config: the full training config (JSON-serialisable).
            seed: the random seed.
            status: initial status, one of :data:`STATUSES`.

        Returns:
            The new run id, e.g. ``convnet-digits-1124-205501-3fa2c1``.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = time.time()
        slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower().split("/")[-1]).strip("-")[:16] or "data"
        stamp = time.strftime("%m%d-%H%M%S", time.gmtime(now))
        with self._connect() as conn:
            for _ in range(20):  # ids made in the same second differ by their random suffix
                run_id = f"{model}-{slug}-{stamp}-{secrets.token_hex(3)}"
                try:
                    conn.execute(
                        "INSERT INTO runs (run_id, family, model, dataset, config, seed, status, created)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, family, model, dataset, json.dumps(config), seed, status, now),
                    )
                    break
                except sqlite3.IntegrityError:
                    continue
            else:
                raise RuntimeError("could not find a free run id")
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run's files (it may not exist for a deleted run)."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", run_id):
            raise RunNotFound(f"not a valid run id: {run_id!r}")
        return self.runs_dir / run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Return the record of a run.

        Raises:
            RunNotFound: no run with that id.
        """
        with self._connect() as conn:
            row = conn.execute(f"{_SELECT_RUNS} WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in {self.home}: `python -m core runs` lists them")
        return _record(row)

    def describe(self, run_id: str) -> dict[str, Any]:
        """The run record for people and JSON: ``metrics`` are the final metrics of a finished
        run, else the latest logged values (epoch metrics over step metrics)."""
        run = self.get_run(run_id)
        if not run["metrics"] or run["status"] in ACTIVE_STATUSES:
            run["metrics"] = {**self.latest_metrics(run_id, "step"), **self.latest_metrics(run_id, "epoch")}
        return {k: v for k, v in run.items() if not k.endswith("_ts")}

    def resolve(self, ref: str) -> str:
        """Turn what a user typed into a run id: an exact id, a unique prefix, or ``latest``
        (the newest active run, else the one that finished last).

        Raises:
            RunNotFound: nothing or several runs match.
        """
        ref = (ref or "").strip()
        with self._connect() as conn:
            if ref == "latest":
                # Active runs first, then the most recently finished: a GAN's reference classifier,
                # created while the GAN evaluates, finishes before it and so does not win.
                row = conn.execute(
                    "SELECT run_id FROM runs ORDER BY COALESCE(finished, 1e18) DESC, created DESC LIMIT 1"
                ).fetchone()
                if row is None:
                    raise RunNotFound(f"the store {self.home} has no runs yet")
                return row["run_id"]
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (ref,)).fetchone():
                return ref
            escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = conn.execute(
                "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 3", (escaped + "%",)
            ).fetchall()
        if len(rows) == 1 and ref:
            return rows[0]["run_id"]
        if len(rows) > 1 and ref:
            raise RunNotFound(f"{ref!r} matches several runs ({rows[0]['run_id']}, {rows[1]['run_id']}, ...): type more of the id")
        raise RunNotFound(f"no run {ref!r} in {self.home}: `python -m core runs` lists them")

    def list_runs(self, *, status: str | Iterable[str] | None = None, family: str | None = None,
                  dataset: str | None = None, limit: int | None = None,
                  tag: str | Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, optionally filtered; ``tag`` keeps the runs that have every tag given.

        Raises:
            InvalidAnnotation: a tag to filter by is not a valid tag.
        """
        clauses, params = [], []
        if tag is not None:
            for name in normalise_tags([tag] if isinstance(tag, str) else tag):
                clauses.append("run_id IN (SELECT run_id FROM run_tags WHERE tag = ?)")
                params.append(name)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if family is not None:
            clauses.append("family = ?")
            params.append(family)
        if dataset is not None:
            clauses.append("dataset = ?")
            params.append(dataset)
        sql = _SELECT_RUNS
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_record(row) for row in rows]

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set fields of a run; JSON fields (config, versions, progress, metrics) take dicts."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        values = [json.dumps(_jsonable(v)) if k in _JSON_FIELDS and v is not None else v for k, v in fields.items()]
        with self._connect() as conn:
            cursor = conn.execute(
                f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE run_id = ?",
                (*values, run_id),
            )
        if cursor.rowcount == 0:
            raise RunNotFound(f"no run {run_id!r} in {self.home}")

    def delete_run(self, run_id: str) -> None:
        """Remove a run, its metrics and its folder. A running or queued run cannot be deleted.

        Raises:
            RunNotFound: no such run.
            UserError: the run is still active.
        """
        run = self.get_run(run_id)
        if run["status"] in ACTIVE_STATUSES:
            raise UserError(f"run {run_id} is {run['status']}: stop or cancel it before deleting it")
        with self.transaction() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # ---- tags and notes ---------------------------------------------------------------------

    def set_tags(self, run_id: str, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags. Tags are stripped, lower-cased, de-duplicated and sorted.

        Returns:
            The run's tags now.

        Raises:
            RunNotFound: no such run.
            InvalidAnnotation: a tag is empty, longer than :data:`TAG_MAX_LENGTH` or has a comma;
                nothing is changed then.
        """
        if isinstance(tags, str):
            raise InvalidAnnotation("set_tags takes a list of tags, not one string")
        names = normalise_tags(tags)
        with self.transaction() as conn:
            self._require_run(conn, run_id)
            conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
            conn.executemany("INSERT INTO run_tags VALUES (?, ?)", [(run_id, name) for name in names])
        return names

    def add_tag(self, run_id: str, tag: str) -> list[str]:
        """Give a run one more tag (already there: nothing changes). Returns the run's tags."""
        [name] = normalise_tags([tag])
        with self.transaction() as conn:
            self._require_run(conn, run_id)
            conn.execute("INSERT OR IGNORE INTO run_tags VALUES (?, ?)", (run_id, name))
            return _tags_of(conn, run_id)

    def remove_tag(self, run_id: str, tag: str) -> list[str]:
        """Take a tag off a run (not there: nothing changes). Returns the run's tags."""
        [name] = normalise_tags([tag])
        with self.transaction() as conn:
            self._require_run(conn, run_id)
            conn.execute("DELETE FROM run_tags WHERE run_id = ? AND tag = ?", (run_id, name))
            return _tags_of(conn, run_id)

    def set_note(self, run_id: str, text: str) -> None:
        """Set a run's note (free text, surrounding whitespace dropped); an empty text clears it.

        Raises:
            RunNotFound: no such run.
            InvalidAnnotation: the note is longer than :data:`NOTE_MAX_LENGTH` characters.
        """
        if not isinstance(text, str):
            raise InvalidAnnotation(f"a note is text, not {type(text).__name__}")
        text = text.strip()
        if len(text) > NOTE_MAX_LENGTH:
            raise InvalidAnnotation(f"the note has {len(text):,} characters; a note holds at most {NOTE_MAX_LENGTH:,}")
        with self._connect() as conn:
            cursor = conn.execute("UPDATE runs SET note = ? WHERE run_id = ?", (text, run_id))
        if cursor.rowcount == 0:
            raise RunNotFound(f"no run {run_id!r} in {self.home}")

    def all_tags(self) -> list[str]:
        """Every tag some run has, sorted."""
        with self._connect() as conn:
            return [row["tag"] for row in conn.execute("SELECT DISTINCT tag FROM run_tags ORDER BY tag")]

    def _require_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise RunNotFound(f"no run {run_id!r} in {self.home}")

    # ---- metrics ----------------------------------------------------------------------------

    def log_metrics(self, run_id: str, values: dict[str, Any], *, step: int, epoch: int | None = None,
                    scope: str = "step") -> None:
        """Record metric values at a global step. Writing the same (scope, step, name) again replaces it.

        Non-numeric values are skipped; NaN and infinities are stored as NULL.
        """
        now = time.time()
        rows = []
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
                continue
            number = float(value)
            rows.append((run_id, scope, int(step), epoch, name, number if math.isfinite(number) else None, now))
        if rows:
            with self.transaction() as conn:  # all of one step's values, or none
                conn.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop metrics logged after ``after_step`` (used when resuming from an earlier checkpoint)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, int(after_step)))

    def metrics(self, run_id: str, *, scope: str | None = None, since_step: int | None = None) -> list[dict[str, Any]]:
        """Metric rows of a run ordered by step: dicts with scope, step, epoch, name, value, time."""
        sql = "SELECT scope, step, epoch, name, value, time FROM metrics WHERE run_id = ?"
        params: list[Any] = [run_id]
        if scope is not None:
            sql += " AND scope = ?"
            params.append(scope)
        if since_step is not None:
            sql += " AND step > ?"
            params.append(int(since_step))
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY step, name", params).fetchall()
        return [dict(row) for row in rows]

    def metric_table(self, run_id: str, scope: str = "epoch") -> dict[str, list[Any]]:
        """Metrics pivoted into columns: ``{"step": [...], "epoch": [...], name: [...]}``.

        Ready for ``pandas.DataFrame(table)``; a metric missing at a step is None.
        """
        by_step: dict[int, dict[str, Any]] = {}
        names: list[str] = []
        for row in self.metrics(run_id, scope=scope):
            entry = by_step.setdefault(row["step"], {"step": row["step"], "epoch": row["epoch"]})
            entry[row["name"]] = row["value"]
            if row["name"] not in names:
                names.append(row["name"])
        steps = sorted(by_step)
        table = {"step": steps, "epoch": [by_step[s]["epoch"] for s in steps]}
        for name in names:
            table[name] = [by_step[s].get(name) for s in steps]
        return table

    def latest_metrics(self, run_id: str, scope: str = "epoch") -> dict[str, float | None]:
        """The last value of each metric in ``scope``."""
        latest: dict[str, float | None] = {}
        for row in self.metrics(run_id, scope=scope):
            latest[row["name"]] = row["value"]
        return latest


def _jsonable(value: Any) -> Any:
    """Make numpy scalars and arrays JSON-serialisable."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Tags ride along as one comma-joined column (a tag never holds a comma).
_SELECT_RUNS = "SELECT *, (SELECT group_concat(tag, ',') FROM run_tags t WHERE t.run_id = runs.run_id) AS tags FROM runs"


def normalise_tags(tags: Iterable[str]) -> list[str]:
    """Tags as the store keeps them: whitespace stripped and collapsed, lower case, de-duplicated, sorted.

    Raises:
        InvalidAnnotation: a tag is empty, longer than :data:`TAG_MAX_LENGTH` or has a comma.
    """
    names = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidAnnotation(f"a tag is text, not {type(tag).__name__}")
        name = " ".join(tag.split()).lower()
        if not name:
            raise InvalidAnnotation("a tag cannot be empty")
        if len(name) > TAG_MAX_LENGTH:
            raise InvalidAnnotation(f"tag {name[:TAG_MAX_LENGTH]!r}... is {len(name)} characters; a tag holds at most {TAG_MAX_LENGTH}")
        if "," in name:
            raise InvalidAnnotation(f"tag {name!r} has a comma: give several tags separately")
        names.add(name)
    return sorted(names)


def _tags_of(conn: sqlite3.Connection, run_id: str) -> list[str]:
    return [row["tag"] for row in conn.execute("SELECT tag FROM run_tags WHERE run_id = ? ORDER BY tag", (run_id,))]


def _record(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["tags"] = sorted(record["tags"].split(",")) if record["tags"] else []
    record["gpus"] = record["gpus"].split(",") if record["gpus"] else []  # in the order given
    for key in _JSON_FIELDS:
        record[key] = json.loads(record[key]) if record[key] else ({} if key != "versions" else None)
    for key in ("created", "started", "finished", "heartbeat"):
        record[f"{key}_ts"] = record[key]
        record[key] = iso(record[key])
    record["stop_requested"] = bool(record["stop_requested"])
    return record


def this_host() -> str:
    return socket.gethostname()
