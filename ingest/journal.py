"""The write-ahead journal of accepted batches (embedded broker only).

The embedded broker keeps its log in memory, so an event it acknowledged is on no disk
until the speed layer archives it (every few seconds). Ingest therefore appends what the
log acknowledged to this journal and answers 202 only once it is fsync'd; a restart
writes whatever the dead log never archived into the archive (:mod:`ingest.recovery`).

Layout: segment files ``<data_dir>/journal/<epoch>-<n>.journal``, append-only. A record
is ``magic | body length | crc32(body) | body``; the body holds the log epoch and, per
log message, its partition, offset and value (the NDJSON of normalised events exactly as
produced). A torn or corrupt record ends a segment's reading: whatever follows it was
never acknowledged, since a record is acknowledged only after its fsync.

Group commit: :meth:`Journal.commit` waits for one ``fsync`` that covers every record
appended before it started; requests arriving meanwhile share the next one.
A segment is deleted once every offset it holds is stored (window rows and archive file),
see :meth:`Journal.prune`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stratum.errors import LogUnavailableError

log = logging.getLogger(__name__)

MAGIC = b"SJR1"
_HEADER = struct.Struct("<4sII")  # magic, body length, crc32 of the body
_EPOCH = struct.Struct("<H")
_COUNT = struct.Struct("<I")
_MESSAGE = struct.Struct("<IqI")  # partition, offset, value length
SEGMENT_BYTES = 64 * 1024 * 1024
SEGMENT_AGE_S = 30.0
SUFFIX = ".journal"

Message = tuple[int, int, bytes]  # partition, offset, value


class JournalError(LogUnavailableError):
    """The journal could not make accepted events durable: ingest answers 503."""


def journal_dir(data_dir: Path) -> Path:
    return data_dir / "journal"


def encode_record(epoch: str, messages: Sequence[Message]) -> bytes:
    raw_epoch = epoch.encode()
    parts = [_EPOCH.pack(len(raw_epoch)), raw_epoch, _COUNT.pack(len(messages))]
    for partition, offset, value in messages:
        parts.append(_MESSAGE.pack(partition, offset, len(value)))
        parts.append(value)
    body = b"".join(parts)
    return _HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


@dataclass(frozen=True, slots=True)
class Record:
    epoch: str
    messages: list[Message]


def _decode_body(body: bytes) -> Record:
    (length,) = _EPOCH.unpack_from(body, 0)
    at = _EPOCH.size
    epoch = body[at : at + length].decode()
    at += length
    (count,) = _COUNT.unpack_from(body, at)
    at += _COUNT.size
    messages = []
    for _ in range(count):
        partition, offset, size = _MESSAGE.unpack_from(body, at)
        at += _MESSAGE.size
        messages.append((partition, offset, body[at : at + size]))
        at += size
    return Record(epoch, messages)


def read_segment(path: Path) -> Iterator[Record]:
    """The intact records of a segment, in order; stops at a torn or corrupt one."""
    data = path.read_bytes()
    at = 0
    while at < len(data):
        if len(data) - at < _HEADER.size:
            break
        magic, length, crc = _HEADER.unpack_from(data, at)
        body = data[at + _HEADER.size : at + _HEADER.size + length]
        if magic != MAGIC or len(body) != length or zlib.crc32(body) != crc:
            break
        yield _decode_body(body)
        at += _HEADER.size + length
    if at < len(data):
        log.warning(
            "journal %s: ignoring %d byte(s) after the last intact record (a write "
            "cut short by a crash; never acknowledged)",
            path.name,
            len(data) - at,
        )


def list_segments(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    return sorted(directory.glob(f"*{SUFFIX}"))


@dataclass
class _Segment:
    path: Path
    fd: int
    opened: float = field(default_factory=time.monotonic)
    size: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)  # partition -> max offset


class Journal:
    """The writer: one process appends, :meth:`commit` makes appends durable. A file is
    closed only when it is deleted or the journal closes, never while an fsync may be
    running on it."""

    def __init__(
        self,
        directory: Path,
        epoch: str,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        segment_age_s: float = SEGMENT_AGE_S,
    ) -> None:
        self.directory = directory
        self.epoch = epoch
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self.syncs = 0  # fsyncs done: fewer than commits when requests share them
        self.broken: str | None = None
        self._segments: list[_Segment] = []  # oldest first
        self._current: _Segment | None = None  # the one taking appends
        self._number = 0
        self._appended = 0
        self._synced = 0
        self._dirty: list[_Segment] = []  # written since the last fsync began
        self._in_sync: list[_Segment] = []  # being fsync'd now
        self._dir_dirty = False
        self._syncing: asyncio.Future[None] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def append(self, messages: Sequence[Message]) -> int:
        """Write one record (on the event loop: a page-cache write); returns the sequence
        number to pass to :meth:`commit`."""
        if self.broken:
            raise JournalError(f"the journal is broken ({self.broken}); restart Stratum")
        segment = self._current
        if (
            segment is None
            or segment.size >= self.segment_bytes
            or (time.monotonic() - segment.opened >= self.segment_age_s)
        ):
            segment = self._roll()
        record = encode_record(self.epoch, messages)
        data = memoryview(record)
        try:
            while data:
                data = data[os.write(segment.fd, data) :]
        except OSError as exc:
            self.broken = str(exc)
            raise JournalError(f"could not write the journal {segment.path}: {exc}") from exc
        segment.size += len(record)
        for partition, offset, _ in messages:
            if offset > segment.last_offsets.get(partition, -1):
                segment.last_offsets[partition] = offset
        if segment not in self._dirty:
            self._dirty.append(segment)
        self._appended += 1
        return self._appended

    async def commit(self, sequence: int) -> None:
        """Return once record ``sequence`` is fsync'd; one fsync serves every waiter."""
        while self._synced < sequence:
            if self.broken:
                raise JournalError(f"the journal is broken ({self.broken}); restart Stratum")
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(self._sync())
            await asyncio.shield(self._syncing)

    async def _sync(self) -> None:
        target, self._in_sync, self._dirty = self._appended, self._dirty, []
        sync_dir, self._dir_dirty = self._dir_dirty, False
        try:
            await asyncio.to_thread(self._fsync, [s.fd for s in self._in_sync], sync_dir)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing
            # written since can be vouched for, so refuse from now on.
            self.broken = str(exc)
            raise JournalError(f"could not fsync the journal: {exc}") from exc
        finally:
            self._syncing = None
            self._in_sync = []
        self._synced = target
        self.syncs += 1

    def _fsync(self, fds: list[int], sync_dir: bool) -> None:
        for fd in fds:
            os.fsync(fd)
        if sync_dir:  # new segment files: their names must survive a crash too
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _roll(self) -> _Segment:
        self._number += 1
        path = self.directory / f"{self.epoch}-{self._number:06d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._current = _Segment(path, fd)
        self._segments.append(self._current)
        self._dir_dirty = True
        return self._current

    def prune(self, stored_through: Mapping[int, int], *, closing: bool = False) -> int:
        """Delete segments whose every offset is stored (``partition -> offset`` through
        which window rows and archive are written); an old current segment (any, when
        ``closing``) stops taking appends first, so a quiet stream leaves no journal
        behind. Returns how many went."""
        current = self._current
        if current is not None and (
            closing or time.monotonic() - current.opened >= self.segment_age_s
        ):
            self._current = None
        busy = self._dirty + self._in_sync
        removed = 0
        for segment in list(self._segments):
            if segment is self._current or any(segment is b for b in busy):
                continue
            if all(stored_through.get(p, -1) >= o for p, o in segment.last_offsets.items()):
                os.close(segment.fd)
                segment.path.unlink(missing_ok=True)
                self._segments.remove(segment)
                removed += 1
        return removed

    def close(self) -> None:
        """Close the files; what is left is recovered at the next start."""
        for segment in self._segments:
            os.close(segment.fd)
        self._segments = []
        self._current = None
        self._dirty = []
