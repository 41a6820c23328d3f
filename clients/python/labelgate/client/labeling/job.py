"""The labeling loop: for each image of the source, skip it if the manifest already has every prompt
result for its content, else ask the server for the missing ones in a worker thread, and commit
them as they come back. A broken image is logged and counted, and the job goes on."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labelgate.client.errors import LabelgateClientError
from labelgate.client.labeling.keys import content_hash, shard_of
from labelgate.client.labeling.labeler import label_image
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.plan import PromptTask
from labelgate.client.labeling.sources import RemoteItem, SourceItem
from labelgate.client.labeling.window import bounded_map

FAILURES_LOG = "failures.log"


class TooManyFailures(RuntimeError):
    pass


@dataclass
class JobCounters:
    """What one run did: labeled (sent to the server), skipped (already in the manifest),
    duplicates (same content as an image in flight), failed, requests (prompt calls)."""

    seen: int = 0
    labeled: int = 0
    skipped: int = 0
    duplicates: int = 0
    failed: int = 0
    requests: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at


@dataclass(frozen=True)
class JobOptions:
    concurrency: int = 8
    limit: int | None = None  # label at most this many images in this run (the rest waits for a rerun)
    max_failures: int | None = None  # stop once more images than this have failed in this run
    progress: bool = True


@dataclass(frozen=True)
class _Work:
    item: SourceItem
    digest: str
    data: bytes
    tasks: tuple[PromptTask, ...]


def in_shard(items: Iterable[SourceItem], shard: tuple[int, int] | None) -> Iterator[SourceItem]:
    index, count = shard or (0, 1)
    return (item for item in items if count == 1 or shard_of(item.key, count) == index)


def run_labeling(client, items: Iterable[SourceItem], manifest: Manifest, tasks: Iterable[PromptTask],
                 out_dir: Path, options: JobOptions = JobOptions(), total: int | None = None) -> JobCounters:
    """Raises TooManyFailures past options.max_failures, LabelgateClientError when no server can be reached."""
    from tqdm import tqdm

    by_key = {task.key: task for task in tasks}
    counters = JobCounters()
    in_flight: set[str] = set()
    bar = tqdm(total=total, unit="img", disable=not options.progress, dynamic_ncols=True, mininterval=0.5)
    log = open(Path(out_dir) / FAILURES_LOG, "a", encoding="utf-8")

    def fail(item: SourceItem, error: BaseException) -> None:
        message = f"{error.code.name}: {error.details}" if isinstance(error, LabelgateClientError) else str(error)
        manifest.record_failure(item.key, item.source, message)
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{item.key}\t{message}\n")
        log.flush()
        counters.failed += 1
        bar.update()
        if options.max_failures is not None and counters.failed > options.max_failures:
            raise TooManyFailures(f"{counters.failed} images failed (--max-failures {options.max_failures}); "
                                  f"see {Path(out_dir) / FAILURES_LOG}")

    def todo() -> Iterator[_Work]:
        started = 0
        for item in items:
            counters.seen += 1
            try:
                work = _prepare(item, manifest, by_key)
            except OSError as error:
                fail(item, error)
                continue
            if work is None:
                counters.skipped += 1
                bar.update()
            elif work.digest in in_flight:
                counters.duplicates += 1
                bar.update()
            elif options.limit is not None and started >= options.limit:
                return
            else:
                started += 1
                in_flight.add(work.digest)
                yield work

    def call(work: _Work):
        return label_image(client, work.data, work.tasks)

    try:
        for work, outcome, error in bounded_map(call, todo(), options.concurrency):
            in_flight.discard(work.digest)
            if error is not None:
                if isinstance(error, LabelgateClientError) and error.unreachable:
                    raise error
                if not isinstance(error, (LabelgateClientError, OSError, ValueError)):
                    raise error
                fail(work.item, error)
                continue
            manifest.put_results(work.digest, outcome.width, outcome.height, outcome.results)
            counters.labeled += 1
            counters.requests += len(work.tasks)
            bar.update()
    finally:
        bar.close()
        log.close()
    return counters


def _prepare(item: SourceItem | RemoteItem, manifest: Manifest, tasks: dict[str, PromptTask]) -> _Work | None:
    """The image's work, or None when the manifest has all of it. A file unchanged since an earlier
    run (same size and mtime; a remote image: same revision) is not read again unless it still needs labeling."""
    size, mtime_ns = item.stamp()
    digest = manifest.known_hash(item.key, size, mtime_ns)
    data = None
    if digest is None:
        data = item.read()
        digest = content_hash(data)
        manifest.put_image(item.key, item.source, digest, size, mtime_ns)
    missing = manifest.missing(digest, list(tasks))
    if not missing:
        return None
    return _Work(item, digest, data if data is not None else item.read(), tuple(tasks[k] for k in missing))
