"""The index beside a recording: a SQLite cache of its list rows and their byte offsets.

Why SQLite: it is in the standard library, answers "the 100 newest denied Pods in
team-a" from a million rows in milliseconds with plain B-tree indexes, is safe to read
while one process appends, and is one file. The JSON Lines recording stays the format
of record: the index holds nothing that cannot be rebuilt from it, and it is rebuilt
whenever it does not describe the file any more.

``session.jsonl`` gets ``session.jsonl.index.sqlite`` beside it (0600: it holds names
and users); when that directory cannot be written, the index goes to webhook-dev's cache
directory under a name derived from the recording's path.

Fresh or stale: the index remembers the recording's inode, the offset just past the last
line it holds, and the file's mtime at that point. Opening it (:meth:`RecordingIndex.open`)

- rebuilds from scratch when there is no index, another index version, another inode,
  a file shorter than the indexed offset, a line boundary missing at that offset, or the
  same size with another mtime (rewritten in place);
- appends the lines after the indexed offset when the file grew (a recording still being
  written, or one written by an older webhook-dev without an index);
- otherwise uses it as it is.

While ``serve`` records, :class:`IndexAppender` adds each line the recorder writes, in
transactions of at most :data:`COMMIT_INTERVAL` seconds, so the cost per call is one
SQLite insert (``bench/bench_recordings.py`` measures it against ``serve``'s throughput).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webhook_dev.errors import RecordingError
from webhook_dev.paths import cache_dir
from webhook_dev.recording import stream
from webhook_dev.recording.query import Query, flag_codes, search_text
from webhook_dev.recording.summary import summary
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.json_body import JsonObject

INDEX_VERSION = 4  # of the index's tables, not of the recording format (4: review kind)
INDEX_SUFFIX = ".index.sqlite"
COMMIT_INTERVAL = 0.5
BATCH = 5000
MAX_WARNINGS = 20

# The list row's keys, in the table's column order (after seq, offset, length, line).
ROW_COLUMNS = (
    "id",
    "time",
    "operation",
    "kind",
    "namespace",
    "name",
    "user",
    "uid",
    "result",
    "message",
    "http_status",
    "patch_ops",
    "duration_ms",
    "generation",
    "path",
    "review",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS exchanges (
    seq INTEGER PRIMARY KEY,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    line INTEGER NOT NULL,
    {", ".join(f"{column} {'REAL' if column == 'duration_ms' else ''}" for column in ROW_COLUMNS)},
    flags TEXT NOT NULL,
    flags_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS search (search_seq INTEGER PRIMARY KEY, search_text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS facets (name TEXT, value TEXT, PRIMARY KEY (name, value));
"""
# ``search`` holds each row's searched text, lower-cased, in a table of its own: a text
# search scans it, and a narrow table scans twice as fast as the wide one (~0.2 s a
# million rows here), then reads only the matching rows of ``exchanges``.
_DROP = (
    "DROP TABLE IF EXISTS exchanges; DROP TABLE IF EXISTS search; "
    "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS facets;"
)
# (ANALYZE's statistics, sqlite_stat1, go with the tables they describe.)
FACET_COLUMNS = {name: 3 + ROW_COLUMNS.index(name) for name in ("kind", "namespace", "operation")}


def insert_rows(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert index rows (:func:`index_values`: the last value is the searched text), and
    the values the page's selects offer (kept in ``facets`` so listing them never scans
    a million rows)."""
    if not rows:
        return
    (last,) = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM exchanges").fetchone()
    first = int(last) + 1
    connection.executemany(_INSERT, ((seq, *row[:-1]) for seq, row in enumerate(rows, first)))
    connection.executemany(
        "INSERT INTO search (search_seq, search_text) VALUES (?, ?)",
        ((seq, row[-1]) for seq, row in enumerate(rows, first)),
    )
    values = {(name, row[at]) for row in rows for name, at in FACET_COLUMNS.items() if row[at]}
    connection.executemany("INSERT OR IGNORE INTO facets (name, value) VALUES (?, ?)", values)


# After a build, the B-trees a filter needs so it does not scan a million rows
# (``docs/benchmarks.md``: ``ns:team-a result:denied`` 0.7 s -> 3 ms at a million).
# Their collation is the query's (``kind = ? COLLATE NOCASE``, see query.py), or SQLite
# could not use them. The selects' columns together, namespace first, answer any mix
# of those from the index alone; each also alone for a filter without a namespace.
# ``duration_ms`` serves ``latency>N``; the partial index ``is:flagged``. A bare word
# (text search) still scans, the narrow ``search`` table (an FTS5 trigram index would
# answer it at once, but doubled the build's time and the file's size).
_INDEXES = """
CREATE INDEX IF NOT EXISTS exchanges_id ON exchanges (id);
CREATE INDEX IF NOT EXISTS exchanges_time ON exchanges (time);
CREATE INDEX IF NOT EXISTS exchanges_selects ON exchanges (namespace COLLATE NOCASE,
    kind COLLATE NOCASE, result COLLATE NOCASE, operation COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS exchanges_kind ON exchanges (kind COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS exchanges_result ON exchanges (result COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS exchanges_operation ON exchanges (operation COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS exchanges_user ON exchanges (user COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS exchanges_duration ON exchanges (duration_ms);
CREATE INDEX IF NOT EXISTS exchanges_flagged ON exchanges (flags) WHERE flags != '';
PRAGMA analysis_limit = 1000;
ANALYZE
"""
_INSERT = (
    f"INSERT INTO exchanges (seq, offset, length, line, {', '.join(ROW_COLUMNS)}, flags, "
    f"flags_json) VALUES ({', '.join('?' * (len(ROW_COLUMNS) + 6))})"
)
SELECT_ROW = f"{', '.join(ROW_COLUMNS)}, flags_json, offset, length, line"


def index_path(recording: Path) -> Path:
    """Where the index of ``recording`` lives: beside it, or in the cache directory."""
    beside = recording.with_name(recording.name + INDEX_SUFFIX)
    if os.access(recording.parent, os.W_OK) or beside.exists():
        return beside
    digest = hashlib.sha256(str(recording.resolve()).encode()).hexdigest()[:24]
    return cache_dir() / "indexes" / f"{digest}{INDEX_SUFFIX}"


def index_values(exchange: Exchange, offset: int, length: int, line: int) -> tuple[Any, ...]:
    """One row of the ``exchanges`` table for an exchange on the line at ``offset``."""
    row = summary(exchange)
    return (
        offset,
        length,
        line,
        *(row[column] for column in ROW_COLUMNS),
        flag_codes(row),
        json.dumps(row["flags"], separators=(",", ":")) if row["flags"] else "[]",
        search_text(row).lower(),
    )


def row_of(values: Sequence[Any]) -> JsonObject:
    """A list row (as :func:`~webhook_dev.recording.summary.summary` makes) from a
    ``SELECT {SELECT_ROW}`` result."""
    row: JsonObject = dict(zip(ROW_COLUMNS, values, strict=False))
    row["flags"] = json.loads(values[len(ROW_COLUMNS)])
    return row


@dataclass
class Refresh:
    """What opening an index did: ``rebuilt`` from scratch or not, lines ``added``,
    the seconds it took, and damaged lines skipped (at most :data:`MAX_WARNINGS`)."""

    rebuilt: bool = False
    added: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]  # (bytes read, bytes in all)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the index file ``path``, created 0600, in WAL mode (a reader and
    the recorder's appender can use it at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


class RecordingIndex:
    """The index of one recording. Open it with :meth:`open` (which makes it fresh)."""

    def __init__(self, recording: Path, connection: sqlite3.Connection, path: Path) -> None:
        self.recording = recording
        self.path = path
        self.connection = connection

    @classmethod
    def open(
        cls, recording: Path, *, progress: Progress | None = None
    ) -> tuple[RecordingIndex, Refresh]:
        """The fresh index of ``recording`` (built or brought up to date first).

        :raises RecordingError: the recording cannot be read.
        """
        if not recording.is_file():
            raise RecordingError(f"recording {recording} does not exist")
        path = index_path(recording)
        try:
            connection = connect(path)
            index = cls(recording, connection, path)
            report = index.refresh(progress=progress)
        except sqlite3.DatabaseError:
            # A damaged cache (a crash in the middle of a build): it is only a cache.
            with contextlib.suppress(NameError):
                connection.close()
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            connection = connect(path)
            index = cls(recording, connection, path)
            report = index.refresh(progress=progress)
        return index, report

    def close(self) -> None:
        self.connection.close()

    # --- freshness -------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        try:
            return dict(self.connection.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:
            return {}

    def refresh(self, *, progress: Progress | None = None) -> Refresh:
        """Make the index describe the file as it is now (see the module's docstring).

        One write transaction from reading the index's state to recording the new one,
        so another process appending to the same index (``serve`` recording) never adds
        a line twice.
        """
        began = time.monotonic()
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            report = self._refresh(progress)
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")
        report.seconds = time.monotonic() - began
        return report

    def _refresh(self, progress: Progress | None) -> Refresh:
        try:
            stat = os.stat(self.recording)
        except OSError as error:
            raise RecordingError(f"cannot read recording {self.recording}: {error}") from error
        meta = self.meta()
        offset = int(meta.get("offset", 0))
        mtime = meta.get("mtime_ns", -1)
        fresh_start = (
            meta.get("version") != INDEX_VERSION
            or meta.get("inode") != stat.st_ino
            or stat.st_size < offset
            or (stat.st_size == offset and mtime not in (-1, stat.st_mtime_ns))
            or not _boundary_at(self.recording, offset)
        )
        if fresh_start:
            self._execute_script(_DROP + _SCHEMA)
            offset, first_line = 0, 1
        elif stat.st_size == offset:
            if mtime == -1:
                self._set_meta(mtime_ns=stat.st_mtime_ns)
            return Refresh()
        else:
            first_line = int(meta.get("lines", 0)) + 1
        report = Refresh(rebuilt=fresh_start)
        self._append_from(offset, first_line, stat.st_ino, report, progress)
        if fresh_start:
            self._execute_script(_INDEXES)
        return report

    def _execute_script(self, script: str) -> None:
        # Not executescript: it would commit the transaction refresh holds.
        for statement in script.split(";"):
            if statement.strip():
                self.connection.execute(statement)

    def _append_from(
        self,
        offset: int,
        first_line: int,
        inode: int,
        report: Refresh,
        progress: Progress | None,
    ) -> None:
        reader = stream.LineReader(self.recording, start=offset, first_number=first_line)
        total = os.stat(self.recording).st_size
        batch: list[tuple[Any, ...]] = []
        lines = first_line - 1
        damaged = int(self.meta().get("damaged", 0))
        for line_offset, length, number, data in reader.raw():
            lines = number
            line = stream.decode_line(self.recording, line_offset, length, number, data)
            if line.exchange is None:
                damaged += 1
                if len(report.warnings) < MAX_WARNINGS:
                    report.warnings.append(f"{line.error}: skipped (not in the index)")
                continue
            batch.append(index_values(line.exchange, line_offset, length, number))
            if len(batch) >= BATCH:
                insert_rows(self.connection, batch)
                report.added += len(batch)
                batch = []
                if progress is not None:
                    progress(line_offset + length, total)
        insert_rows(self.connection, batch)
        report.added += len(batch)
        end = max(reader.end, offset)
        stat = os.stat(self.recording)
        # The mtime counts only if nothing was appended after what was read.
        self._set_meta(
            version=INDEX_VERSION,
            inode=inode,
            offset=end,
            lines=max(lines, first_line - 1),
            mtime_ns=stat.st_mtime_ns if stat.st_size == end else -1,
            damaged=damaged,
        )
        if progress is not None:
            progress(total, total)

    def _set_meta(self, **values: Any) -> None:
        self.connection.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items()
        )

    # --- queries ---------------------------------------------------------------------

    def count(self, query: Query | None = None) -> int:
        query = query or Query()
        where, parameters = query.sql()
        (total,) = self.connection.execute(
            f"SELECT COUNT(*) FROM {_source(query)} WHERE {where}", parameters
        ).fetchone()
        return int(total)

    def rows(
        self,
        query: Query | None = None,
        *,
        offset: int = 0,
        limit: int = 100,
        by_time: bool = False,
    ) -> list[JsonObject]:
        """List rows matching ``query``, newest first: last written, or ``by_time`` by
        the time each call started (to merge several recordings)."""
        query = query or Query()
        if not query and not by_time:
            # Unfiltered, newest first: seq runs 1..N without gaps (rows are only ever
            # appended), so a deep page is a range, not OFFSET stepping over 900,000 rows.
            cursor = self.connection.execute(
                f"SELECT {SELECT_ROW} FROM exchanges WHERE seq <= "
                "(SELECT COALESCE(MAX(seq), 0) FROM exchanges) - ? ORDER BY seq DESC LIMIT ?",
                [offset, limit],
            )
            return [row_of(values) for values in cursor]
        where, parameters = query.sql()
        key = "search_seq" if query.searches_text else "seq"  # the outer loop's rowid
        order = f"time DESC, {key} DESC" if by_time else f"{key} DESC"
        cursor = self.connection.execute(
            f"SELECT {SELECT_ROW} FROM {_source(query)} WHERE {where} "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            [*parameters, limit, offset],
        )
        return [row_of(values) for values in cursor]

    def page(self, query: Query, *, offset: int, limit: int) -> tuple[int, list[JsonObject]]:
        """The count of rows matching ``query`` and its page (newest first), read in as
        few scans as the query allows.

        A text search cannot use a B-tree: both the page and the count scan the search
        table. Here one scan walks the matching rows' numbers, newest first, counting
        them and keeping the page's, and only those rows are then read in full.
        """
        if not query.searches_text:
            rows = self.rows(query, offset=offset, limit=limit)
            if offset == 0 and len(rows) < limit:
                return len(rows), rows  # fewer than asked for: that is the count
            return self.count(query), rows
        where, parameters = query.sql()
        cursor = self.connection.execute(
            f"SELECT search_seq FROM {_source(query)} WHERE {where} ORDER BY search_seq DESC",
            parameters,
        )
        total, wanted = 0, []
        end = offset + limit
        for (seq,) in cursor:
            if offset <= total < end:
                wanted.append(seq)
            total += 1
        if not wanted:
            return total, []
        marks = ",".join("?" * len(wanted))
        cursor = self.connection.execute(
            f"SELECT {SELECT_ROW} FROM exchanges WHERE seq IN ({marks}) ORDER BY seq DESC",
            wanted,
        )
        return total, [row_of(values) for values in cursor]

    def locate(self, exchange_id: str) -> tuple[int, int, int] | None:
        """``(offset, length, line)`` of the exchange with this id, or ``None``."""
        found = self.connection.execute(
            "SELECT offset, length, line FROM exchanges WHERE id = ? ORDER BY seq DESC LIMIT 1",
            [exchange_id],
        ).fetchone()
        return None if found is None else (int(found[0]), int(found[1]), int(found[2]))

    def get(self, exchange_id: str) -> Exchange | None:
        """The exchange with this id, read from the recording by its offset."""
        found = self.locate(exchange_id)
        if found is None:
            return None
        offset, length, line = found
        return stream.read_at(self.recording, offset, length, where=f"{self.recording}:{line}")

    def positions(self, query: Query | None = None) -> Iterator[tuple[int, int, int]]:
        """``(offset, length, line)`` of each matching exchange, in file order."""
        query = query or Query()
        where, parameters = query.sql()
        key = "search_seq" if query.searches_text else "seq"
        cursor = self.connection.execute(
            f"SELECT offset, length, line FROM {_source(query)} WHERE {where} ORDER BY {key}",
            parameters,
        )
        for offset, length, line in cursor:
            yield int(offset), int(length), int(line)

    def distinct(self, column: str, limit: int = 500) -> list[str]:
        """The distinct non-empty values of a text column (for the page's selects)."""
        if column not in FACET_COLUMNS:
            raise ValueError(column)
        cursor = self.connection.execute(
            "SELECT value FROM facets WHERE name = ? ORDER BY value LIMIT ?", [column, limit]
        )
        return [str(value) for (value,) in cursor]

    def stats(self) -> dict[str, Any]:
        """Counts and the time span, for ``webhook-dev recordings``."""
        total, first, last, denied, errors, flagged = self.connection.execute(
            "SELECT COUNT(*), MIN(time), MAX(time), "
            "SUM(result = 'denied'), SUM(result = 'error'), SUM(flags != '') FROM exchanges"
        ).fetchone()
        meta = self.meta()
        return {
            "exchanges": int(total),
            "first": first,
            "last": last,
            "denied": int(denied or 0),
            "errors": int(errors or 0),
            "flagged": int(flagged or 0),
            "damaged": int(meta.get("damaged", 0)),
        }


class IndexAppender:
    """Adds each line the recorder writes to the recording's index, in short transactions.

    The recorder calls :meth:`add` after each line with its offset and length; rows are
    committed every :data:`COMMIT_INTERVAL` seconds (and on :meth:`close`), together with
    the offset they reach, so a crash loses at most that much of the cache and the next
    open appends what is missing. If another process brought the index further meanwhile
    (``webhook-dev recordings`` in another shell), rows it already holds are dropped. A
    locked index is retried at the next commit, never waited on (this runs on the event
    loop). Any other SQLite failure turns the appender off with one warning on stderr:
    the recording matters, its cache does not.
    """

    def __init__(self, recording: Path) -> None:
        self.recording = recording
        self._index: RecordingIndex | None = None
        self._pending: list[tuple[Any, ...]] = []
        self._lines = 0
        self._end = 0
        self._last_commit = time.monotonic()
        try:
            index, _ = RecordingIndex.open(recording)
            index.connection.execute("PRAGMA busy_timeout = 20")
            self._index = index
            meta = index.meta()
            self._lines, self._end = int(meta.get("lines", 0)), int(meta.get("offset", 0))
        except (sqlite3.Error, OSError, RecordingError) as error:
            self._give_up(error)

    def add(self, exchange: Exchange, offset: int, length: int) -> None:
        """The line at ``offset`` (``length`` bytes) now holds ``exchange``."""
        if self._index is None:
            return
        if offset != self._end:  # a line we did not see: the next open catches up
            self._end = -1
            return
        self._lines += 1
        self._pending.append(index_values(exchange, offset, length, self._lines))
        self._end = offset + length
        if time.monotonic() - self._last_commit >= COMMIT_INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Commit the rows added so far."""
        self._last_commit = time.monotonic()
        index = self._index
        if index is None or not self._pending:
            return
        connection = index.connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # locked by another process: try again at the next commit
        try:
            indexed = int(dict(connection.execute("SELECT key, value FROM meta")).get("offset", 0))
            rows = [row for row in self._pending if row[0] >= indexed]
            if rows and rows[0][0] == indexed:
                insert_rows(connection, rows)
                values = {"offset": rows[-1][0] + rows[-1][1], "lines": rows[-1][2], "mtime_ns": -1}
                connection.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items()
                )
            connection.execute("COMMIT")
            self._pending = []
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            self._give_up(error)

    def close(self) -> None:
        """Commit what is left and record the file's final state (fresh on next open)."""
        if self._index is None:
            return
        self._index.connection.execute("PRAGMA busy_timeout = 5000")
        self.flush()
        if self._index is not None:
            with contextlib.suppress(sqlite3.Error, RecordingError):
                self._index.refresh()
            self._index.close()
            self._index = None

    def _give_up(self, error: BaseException) -> None:
        print(f"webhook-dev: not indexing {self.recording} ({error})", file=sys.stderr)
        if self._index is not None:
            with contextlib.suppress(sqlite3.Error):
                self._index.close()
        self._index = None


def open_all(
    recordings: Iterable[Path], *, progress: Progress | None = None
) -> list[tuple[RecordingIndex, Refresh]]:
    """:meth:`RecordingIndex.open` for each recording, closing them all if one fails."""
    opened: list[tuple[RecordingIndex, Refresh]] = []
    try:
        for recording in recordings:
            opened.append(RecordingIndex.open(recording, progress=progress))
    except BaseException:
        for index, _ in opened:
            index.close()
        raise
    return opened


def _source(query: Query) -> str:
    """The tables a query reads. With a bare word, the narrow ``search`` table is the
    outer loop (CROSS JOIN keeps SQLite from choosing otherwise): it is scanned, and
    ``exchanges`` is read only for the rows whose text matched."""
    if query.searches_text:
        return "search CROSS JOIN exchanges ON seq = search_seq"
    return "exchanges"


def _boundary_at(path: Path, offset: int) -> bool:
    """Whether ``offset`` is the start of a line (0, or just after a newline)."""
    if offset == 0:
        return True
    try:
        with path.open("rb") as file:
            file.seek(offset - 1)
            return file.read(1) == b"\n"
    except OSError:
        return False
