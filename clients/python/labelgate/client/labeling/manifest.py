"""The job's resume manifest: one SQLite file in the output folder.

- images: dataset key -> source, content hash (and the file's size and mtime, so that a rerun
  does not read finished files again);
- results: (content hash, prompt key) -> the raw objects that prompt found. An image is finished
  when every prompt task of the current ontology has a row for its content; a changed ontology
  only lacks the rows of the prompts it changed, and duplicate files share their rows;
- contents: content hash -> the size the server decoded;
- failures: key -> the last error, until the image succeeds;
- meta: the ontology, models and parameters of the last run (for --export-only and merge);
- pushes: what was pushed back into an annotation tool (target, item, version), so that a rerun
  does not push the same labels twice (--push-predictions, --push-annotations).

Only the job's main thread uses the connection; rows are committed as each image finishes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

MANIFEST_NAME = "manifest.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (key TEXT PRIMARY KEY, source TEXT NOT NULL, content_hash TEXT NOT NULL,
                                   size INTEGER, mtime_ns INTEGER);
CREATE INDEX IF NOT EXISTS images_by_content ON images (content_hash);
CREATE TABLE IF NOT EXISTS contents (content_hash TEXT PRIMARY KEY, width INTEGER NOT NULL, height INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS results (content_hash TEXT NOT NULL, prompt_key TEXT NOT NULL, objects TEXT NOT NULL,
                                    PRIMARY KEY (content_hash, prompt_key));
CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, source TEXT NOT NULL, error TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pushes (target TEXT NOT NULL, item TEXT NOT NULL, version TEXT NOT NULL,
                                   PRIMARY KEY (target, item, version));
"""


class Manifest:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_dir(cls, directory: Path) -> Manifest:
        return cls(Path(directory) / MANIFEST_NAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- meta ------------------------------------------------------------------------------------

    def set_meta(self, name: str, value) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value, sort_keys=True)))

    def meta(self, name: str, default=None):
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else default

    # --- images and results ----------------------------------------------------------------------

    def known_hash(self, key: str, size: int, mtime_ns: int) -> str | None:
        """The content hash stored for `key` if its file has not changed since."""
        row = self._db.execute("SELECT content_hash FROM images WHERE key = ? AND size = ? AND mtime_ns = ?",
                               (key, size, mtime_ns)).fetchone()
        return row[0] if row else None

    def put_image(self, key: str, source: str, content_hash: str, size: int | None, mtime_ns: int | None) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?)",
                             (key, source, content_hash, size, mtime_ns))

    def missing(self, content_hash: str, prompt_keys: Sequence[str]) -> list[str]:
        done = {row[0] for row in self._db.execute(
            "SELECT prompt_key FROM results WHERE content_hash = ?", (content_hash,))}
        return [key for key in prompt_keys if key not in done]

    def put_results(self, content_hash: str, width: int, height: int, results: dict[str, list]) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO contents VALUES (?, ?, ?)", (content_hash, width, height))
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                                 [(content_hash, key, json.dumps(objects)) for key, objects in results.items()])
            self._db.execute("DELETE FROM failures WHERE key IN (SELECT key FROM images WHERE content_hash = ?)",
                             (content_hash,))

    def record_failure(self, key: str, source: str, error: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", (key, source, error))

    def failures(self) -> list[tuple[str, str, str]]:
        return self._db.execute("SELECT key, source, error FROM failures ORDER BY key").fetchall()

    def counts(self) -> dict[str, int]:
        return {table: self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("images", "contents", "results", "failures")}

    def finished(self, prompt_keys: Sequence[str]) -> Iterator[tuple[str, str, str, int, int, dict[str, list]]]:
        """(key, source, content hash, width, height, {prompt key: objects}) of every image whose
        content has a result for each of `prompt_keys`, in key order, one at a time."""
        wanted = list(dict.fromkeys(prompt_keys))
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            "SELECT images.key, images.source, images.content_hash, contents.width, contents.height "
            "FROM images JOIN contents USING (content_hash) ORDER BY images.key")
        for key, source, digest, width, height in rows:
            found = dict(self._db.execute(
                f"SELECT prompt_key, objects FROM results WHERE content_hash = ? AND prompt_key IN ({marks})",
                (digest, *wanted)).fetchall())
            if len(found) == len(wanted):
                yield key, source, digest, width, height, {k: json.loads(v) for k, v in found.items()}

    # --- pushes back into annotation tools ---------------------------------------------------------

    def pushed(self, target: str, item: str, version: str) -> bool:
        return self._db.execute("SELECT 1 FROM pushes WHERE target = ? AND item = ? AND version = ?",
                                (target, item, version)).fetchone() is not None

    def record_push(self, target: str, item: str, version: str) -> None:
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO pushes VALUES (?, ?, ?)", (target, item, version))

    # --- merging shards --------------------------------------------------------------------------

    def merge_from(self, other: Path) -> None:
        """Every row of another manifest (a shard's) that this one lacks."""
        with self._db:
            self._db.execute("ATTACH DATABASE ? AS shard", (str(other),))
        try:
            with self._db:
                for table in ("images", "contents", "results"):
                    self._db.execute(f"INSERT OR IGNORE INTO main.{table} SELECT * FROM shard.{table}")
                self._db.execute("INSERT OR IGNORE INTO main.failures SELECT * FROM shard.failures WHERE key NOT IN "
                                 "(SELECT key FROM main.images JOIN main.contents USING (content_hash))")
                self._db.execute("INSERT OR IGNORE INTO main.meta SELECT * FROM shard.meta")
        finally:
            self._db.execute("DETACH DATABASE shard")
