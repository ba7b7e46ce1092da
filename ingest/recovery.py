"""Recovery at start (embedded broker): events the journal holds for a dead log epoch
that its archive lacks go into the archive, under that epoch's name with their original
partition and offsets, so the master dataset holds every acknowledged event once.

Written into the archive rather than produced into the new log: the speed rows the dead
epoch already wrote for some of them then are not counted a second time. The next batch
run sees new files (dirty hours) and recomputes them. What is already archived is told
by ``(offset, event_id)`` in the epoch's files for that partition, not by file names
alone: a crash between two hour files of one flush leaves a range half written.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ingest.journal import journal_dir, list_segments, read_segment
from stratum import archive
from stratum.event_frames import decode_messages

log = logging.getLogger(__name__)


@dataclass
class Recovered:
    """Per dead epoch: events journaled, and of those written into the archive now."""

    journaled: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    segments_deleted: int = 0


def archived_pairs(root: Path, epoch: str, partition: int, first: int, last: int) -> pl.DataFrame:
    """``(offset, event_id)`` of the archived events of one epoch's partition whose file
    ranges meet ``first..last``."""
    files = []
    for path in archive.list_files(root):
        try:
            file_epoch, file_partition, file_first, file_last = archive.parse_file_name(path)
        except ValueError:
            continue  # not an archive file's name
        if (file_epoch, file_partition) == (epoch, partition) and (
            file_first <= last and file_last >= first
        ):
            files.append(path)
    if not files:
        return pl.DataFrame(schema={"offset": pl.Int64, "event_id": pl.String})
    return pl.concat([pl.read_parquet(f, columns=["offset", "event_id"]) for f in files])


def recover_journal(data_dir: Path, current_epoch: str) -> Recovered:
    """Archive what the journal holds of epochs other than ``current_epoch`` and is not
    archived yet, then delete those segments. Safe to run again after a crash midway."""
    report = Recovered()
    segments = [
        s
        for s in list_segments(journal_dir(data_dir))
        if not s.name.startswith(f"{current_epoch}-")
    ]
    if not segments:
        return report
    messages: dict[tuple[str, int], dict[int, bytes]] = defaultdict(dict)
    for segment in segments:
        for record in read_segment(segment):
            for partition, offset, value in record.messages:
                messages[(record.epoch, partition)][offset] = value
    root = archive.archive_root(data_dir)
    for (epoch, partition), by_offset in sorted(messages.items()):
        decoded = decode_messages(sorted(by_offset.items()))
        frame = decoded.frame
        have = archived_pairs(root, epoch, partition, min(by_offset), max(by_offset))
        missing = frame.join(have, on=["offset", "event_id"], how="anti", maintain_order="left")
        report.journaled[epoch] = report.journaled.get(epoch, 0) + frame.height
        report.written[epoch] = report.written.get(epoch, 0) + missing.height
        if missing.height:
            report.files += archive.write_frame(
                root, epoch, partition, missing, *archive.offset_range(missing)
            )
    for segment in segments:
        segment.unlink()
        report.segments_deleted += 1
    for epoch in sorted(report.journaled):
        level = logging.WARNING if report.written[epoch] else logging.INFO
        log.log(
            level,
            "journal recovery: epoch %s: %d acknowledged event(s) journaled, %d "
            "of them were not archived and now are",
            epoch,
            report.journaled[epoch],
            report.written[epoch],
        )
    return report
