"""A data file's lines, checked as they stream: the object's MD5 and its line count against the manifest.

The gzip is read in chunks and decompressed as it goes, so memory stays flat whatever the file's
size; the checks can only finish at the end, so the caller loads inside a transaction and commits
only once the iterator has ended without `FileRefused`. Written by hand because the checks are
DynamoDB's manifest contract; gzip, hashlib and orjson do the work.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from typing import Any, BinaryIO, Iterator

import orjson

from ddbsync.exports.manifest import DataFile, FileRefused


class _Hashing:
    """A read-only stream that hashes what passes through it, so the file is read once."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.md5 = hashlib.md5(usedforsecurity=False)

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.md5.update(chunk)
        return chunk

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


def verified_lines(raw: BinaryIO, data_file: DataFile, where: str) -> Iterator[dict[str, Any]]:
    """Each line of a gzipped DynamoDB JSON data file as a dict; `FileRefused` (naming `where`) at the end if
    the object is not the one the manifest describes, or at once if it is not gzipped JSON lines."""
    source = _Hashing(raw)
    count = 0
    try:
        with gzip.GzipFile(fileobj=source, mode="rb") as lines:  # type: ignore[arg-type]
            for line in lines:
                if not line.strip():
                    continue
                count += 1
                try:
                    yield orjson.loads(line)  # several times json's speed on these small documents
                except orjson.JSONDecodeError:
                    raise FileRefused(f"{where}: line {count} is not JSON; the file is damaged") from None
        source.drain()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # the bytes; a failed read is not the file's fault
        raise FileRefused(f"{where}: not a complete gzip file ({error}); download it again or re-export") from None
    if source.md5.digest() != data_file.md5:
        raise FileRefused(f"{where}: MD5 {source.md5.hexdigest()} is not the manifest's {data_file.md5.hex()}")
    if count != data_file.item_count:
        raise FileRefused(f"{where}: {count} lines, the manifest says {data_file.item_count} items")
