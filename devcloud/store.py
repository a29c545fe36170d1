"""Persistent state: every resource is a JSON document in SQLite, mirrored in memory.

All reads and writes happen under one re-entrant lock held for the whole of a request, so
concurrent clients see serialisable behaviour and no update is lost. The in-memory copy is the
working set (fast filtering over thousands of servers); SQLite is written at the end of each
request with only the documents that changed, so a crash loses at most the request in flight.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Doc = dict[str, Any]


class Store:
    def __init__(self, path: Path) -> None:
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs ("
            " kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,"
            " PRIMARY KEY (kind, id))"
        )
        self._data: dict[str, dict[str, Doc]] = {}
        for kind, doc_id, text in self._db.execute("SELECT kind, id, doc FROM docs"):
            self._data.setdefault(kind, {})[doc_id] = json.loads(text)
        self._dirty: set[tuple[str, str]] = set()
        self._deleted: set[tuple[str, str]] = set()

    def close(self) -> None:
        with self.lock:
            self.commit()
            self._db.close()

    def all(self, kind: str) -> dict[str, Doc]:
        return self._data.setdefault(kind, {})

    def values(self, kind: str) -> Iterator[Doc]:
        return iter(list(self.all(kind).values()))

    def get(self, kind: str, doc_id: str) -> Doc | None:
        return self._data.get(kind, {}).get(doc_id)

    def put(self, kind: str, doc: Doc) -> Doc:
        """Insert or mark as changed; the document must carry its own "id"."""
        key = (kind, str(doc["id"]))
        self.all(kind)[key[1]] = doc
        self._dirty.add(key)
        self._deleted.discard(key)
        return doc

    def delete(self, kind: str, doc_id: str) -> None:
        self.all(kind).pop(doc_id, None)
        self._dirty.discard((kind, doc_id))
        self._deleted.add((kind, doc_id))

    def commit(self) -> None:
        if not self._dirty and not self._deleted:
            return
        rows = [(k, i, json.dumps(self._data[k][i])) for k, i in self._dirty]
        gone = list(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        self._db.execute("BEGIN")
        try:
            if rows:
                self._db.executemany(
                    "INSERT INTO docs (kind, id, doc) VALUES (?, ?, ?)"
                    " ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc",
                    rows,
                )
            if gone:
                self._db.executemany("DELETE FROM docs WHERE kind = ? AND id = ?", gone)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
