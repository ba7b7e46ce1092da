"""The write-ahead journal of accepted batches: its record format (a torn or corrupt last
record is ignored), the group commit (concurrent requests share one fsync), pruning of
stored segments, and recovery into the archive of what a dead epoch never archived."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
import pytest

from ingest.journal import Journal, journal_dir, list_segments, read_segment
from ingest.recovery import recover_journal
from stratum.archive import archive_root, list_files, write_partition_range
from stratum.events import encode_events

HOUR = 3_600_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % HOUR  # an hour boundary


def _events(prefix: str, n: int, ts: int = T0 + 1000) -> list[dict[str, object]]:
    return [
        {"event_id": f"{prefix}{i}", "ts": ts + i, "type": "click", "country": "DE"}
        for i in range(n)
    ]


def _message(
    partition: int, offset: int, events: list[dict[str, object]]
) -> tuple[int, int, bytes]:
    return (partition, offset, encode_events(events))  # type: ignore[arg-type]


def test_records_round_trip_and_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "100")
    first = [_message(0, 0, _events("a", 3)), _message(1, 0, _events("b", 2))]
    second = [_message(0, 1, _events("c", 1))]
    asyncio.run(journal.commit(journal.append(first)))
    asyncio.run(journal.commit(journal.append(second)))
    journal.close()
    (segment,) = list_segments(tmp_path)
    records = list(read_segment(segment))
    assert [(r.epoch, r.messages) for r in records] == [("100", first), ("100", second)]

    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # the last write cut short by a crash
    assert [r.messages for r in read_segment(segment)] == [first]
    corrupt = bytearray(data)
    corrupt[-3] ^= 0xFF  # a flipped byte in the last record's body: its crc fails
    segment.write_bytes(bytes(corrupt))
    assert [r.messages for r in read_segment(segment)] == [first]


def test_concurrent_commits_share_one_fsync(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "100")

    async def request(i: int) -> None:
        await journal.commit(journal.append([_message(i % 4, i, _events(f"e{i}-", 2))]))

    async def burst() -> None:
        await asyncio.gather(*(request(i) for i in range(50)))

    asyncio.run(burst())
    assert journal.syncs == 1
    asyncio.run(request(50))
    assert journal.syncs == 2
    journal.close()
    assert sum(len(r.messages) for s in list_segments(tmp_path) for r in read_segment(s)) == 51


def test_prune_deletes_only_segments_stored_through_their_offsets(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "100", segment_bytes=1)  # a new segment per record
    for offset in range(3):
        asyncio.run(journal.commit(journal.append([_message(0, offset, _events("x", 1))])))
    assert journal.segment_count == 3
    assert journal.prune({0: 0}) == 1  # the current (third) segment is never pruned
    assert journal.prune({}) == 0
    assert journal.prune({0: 2}) == 1
    assert journal.prune({0: 2}, closing=True) == 1
    assert list_segments(tmp_path) == []
    journal.close()


def _archived(data_dir: Path) -> pl.DataFrame:
    files = list_files(archive_root(data_dir))
    return pl.concat(
        [pl.read_parquet(f).select("offset", "event_id", "ts") for f in files]
    ).with_columns(pl.col("ts").dt.epoch("ms"))


def test_recovery_archives_what_a_dead_epoch_never_archived_once(tmp_path: Path) -> None:
    # Epoch 100 archived offset 0 of partition 0, and of offset 1 only the file of its
    # first hour (a crash between two hour files); offset 2 and partition 1 not at all.
    split = _events("s", 2, ts=T0 + HOUR - 1)  # one event in each of two hours
    root = archive_root(tmp_path)
    write_partition_range(root, "100", 0, [(0, e) for e in _events("a", 3)])  # type: ignore[misc]
    write_partition_range(root, "100", 0, [(1, split[0])])  # type: ignore[list-item]
    journal = Journal(journal_dir(tmp_path), "100")
    asyncio.run(
        journal.commit(
            journal.append(
                [
                    _message(0, 0, _events("a", 3)),
                    _message(0, 1, split),
                    _message(1, 0, _events("b", 2)),
                ]
            )
        )
    )
    asyncio.run(journal.commit(journal.append([_message(0, 2, _events("c", 4))])))
    journal.close()
    before = len(list_files(root))

    report = recover_journal(tmp_path, "200")
    assert report.journaled == {"100": 3 + 2 + 2 + 4}
    assert report.written == {"100": 1 + 2 + 4}
    assert list_segments(journal_dir(tmp_path)) == []
    archived = _archived(tmp_path)
    assert archived.height == 3 + 2 + 2 + 4
    assert archived["event_id"].n_unique() == archived.height  # each once
    assert sorted(archived.filter(pl.col("offset") == 1)["event_id"]) == ["s0", "s1"]
    assert len(list_files(root)) > before

    assert recover_journal(tmp_path, "200").journaled == {}  # nothing left to do


def test_recovery_leaves_the_current_epochs_segments(tmp_path: Path) -> None:
    journal = Journal(journal_dir(tmp_path), "300")
    asyncio.run(journal.commit(journal.append([_message(0, 0, _events("n", 1))])))
    journal.close()
    assert recover_journal(tmp_path, "300").journaled == {}
    assert len(list_segments(journal_dir(tmp_path))) == 1


@pytest.mark.parametrize("cut", [1, 8, 13])
def test_recovery_ignores_a_torn_last_record(tmp_path: Path, cut: int) -> None:
    journal = Journal(journal_dir(tmp_path), "100")
    asyncio.run(journal.commit(journal.append([_message(0, 0, _events("k", 2))])))
    asyncio.run(journal.commit(journal.append([_message(0, 1, _events("t", 2))])))
    journal.close()
    (segment,) = list_segments(journal_dir(tmp_path))
    segment.write_bytes(segment.read_bytes()[:-cut])
    assert recover_journal(tmp_path, "200").written == {"100": 2}
    assert sorted(_archived(tmp_path)["event_id"]) == ["k0", "k1"]
