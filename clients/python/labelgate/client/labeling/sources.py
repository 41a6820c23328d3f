"""The images of a dataset, as (key, path) in a deterministic order, read lazily: a folder (walked
recursively, filtered by a glob), a list file (one path a line), or a COCO JSON's `images`.

The key is the image's path relative to the dataset root: unique across folders (two `0001.jpg`
in different folders are two images), and the same on every machine that mounts the dataset."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class SourceItem:
    key: str
    path: Path

    @property
    def source(self) -> str:
        return str(self.path)

    def stamp(self) -> tuple[int, int]:
        """What tells the manifest the image is unchanged since it was hashed: size and mtime."""
        stat = self.path.stat()
        return stat.st_size, stat.st_mtime_ns

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class RemoteItem:
    """An image read through an API (a Label Studio task, a CVAT frame): `source` is its URL, `revision`
    changes whenever its bytes may have (so a rerun downloads only what may have changed), `fetch`
    downloads it (raising OSError on failure, which the job logs as a failed image); `reference` is the
    image as the tool's task names it (Label Studio: the data field), for exports that point back at it."""

    key: str
    source: str
    revision: str
    fetch: Callable[[], bytes]
    reference: str = ""

    def stamp(self) -> tuple[int, int]:
        """(-1, a hash of the revision) in the manifest's (size, mtime) columns: no file has size -1."""
        return -1, int.from_bytes(hashlib.blake2b(self.revision.encode(), digest_size=7).digest(), "big")

    def read(self) -> bytes:
        return self.fetch()


def iter_source(source: Path, glob: str = "", image_root: Path | None = None) -> Iterator[SourceItem]:
    """A folder, a list file (.txt, .lst) or a COCO JSON (.json). `glob` is an fnmatch pattern on
    the key (`*` also matches `/`); `image_root` is where relative paths in files start (default:
    the file's folder)."""
    source = Path(source)
    if source.is_dir():
        items = _folder(source)
    elif source.is_file() and source.suffix.lower() == ".json":
        items = _coco(source, image_root or source.parent)
    elif source.is_file():
        items = _list_file(source, image_root or source.parent)
    else:
        raise ValueError(f"{source}: no such folder or file (give a folder, a list file or a COCO JSON)")
    for item in items:
        if keep_key(item.key, glob):
            yield item


def keep_key(key: str, glob: str) -> bool:
    return not glob or fnmatch.fnmatchcase(key, glob)


def _folder(root: Path) -> Iterator[SourceItem]:
    for directory, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES):
                path = Path(directory) / name
                yield SourceItem(path.relative_to(root).as_posix(), path.resolve())


def _list_file(path: Path, root: Path) -> Iterator[SourceItem]:
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield _item(line, root, f"{path}:{number}")


def _coco(path: Path, root: Path) -> Iterator[SourceItem]:
    try:
        images = json.loads(path.read_text())["images"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not a COCO JSON with an 'images' list") from None
    for index, image in enumerate(images):
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            raise ValueError(f"{path}: images[{index}] has no 'file_name'")
        yield _item(image["file_name"], root, f"{path}: images[{index}]")


def _item(name: str, root: Path, where: str) -> SourceItem:
    if "://" in name:
        raise ValueError(f"{where}: {name!r}: only local paths are supported; mount or download the images first")
    path = Path(name) if Path(name).is_absolute() else root / name
    try:
        key = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        key = PurePosixPath(Path(name).as_posix()).as_posix().lstrip("/")
    return SourceItem(key, path.resolve())
