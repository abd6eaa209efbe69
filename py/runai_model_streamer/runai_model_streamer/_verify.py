"""Integrity checks while streaming: an object read whole is checked against the checksum its
store keeps of it, with no second pass over its bytes.

The engine computes the CRC of every range it reads, from the destination memory right after
the read (``runai_file_request_t.checksum``), and a :class:`ObjectCheck` combines the ranges'
CRCs in file order into the whole object's (``runai_streamer_checksum_combine``); the part read
before the stream (a safetensors header) is hashed by the caller. The last range of the object
completes the check, and a mismatch raises :class:`ChecksumMismatchError` before that range's
tensors are handed out, so a caller that iterates to the end never ends with corrupted weights.
In a shared (distributed) stream each rank checksums the pieces it reads, and the ranks gather
every piece's CRC before the last round is handed out: each rank verifies the whole object.

Checkable are the CRCs object stores keep of whole objects: CRC32C (GCS for every object; S3
``x-amz-checksum-crc32c``), CRC64/NVME and CRC32 (S3), and, where a store keeps no CRC, a digest of
the whole object (S3's SHA-1 and SHA-256, Azure's Content-MD5, which Put Blob stores). A digest
cannot be combined from ranges: an :class:`OrderedDigest` hashes the object in a thread of its own
that follows the part of it that has landed, in file order, while the engine still computes the
CRC32C of every range (what a cache entry of the object is checked against later). S3's checksum
of a multipart upload (composite: the CRC of its parts' CRCs) is checked where the plugin found
the part layout (the first and last parts' sizes, from HEADs of those parts: parts of one size
but the last, as the AWS SDKs upload them): a range that spans a part boundary has each side's
CRC computed from its bytes, so every part's CRC combines from its ranges. Not checkable: a
composite checksum of parts of other sizes, and a digest in a shared stream, where each rank
holds only pieces of the object.
``RUNAI_STREAMER_VERIFY``: ``auto`` (default) checks what there is, ``require`` refuses to stream an
object it cannot check, ``off`` checks nothing. Local files keep no checksum and are never checked.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from runai_model_streamer._abi import CHECKSUM_CRC32, CHECKSUM_CRC32C, CHECKSUM_CRC64NVME
from runai_model_streamer._errors import (
    ChecksumMismatchError,
    ChecksumUnavailableError,
    RunaiStreamerError,
)
from runai_model_streamer._native import StoredObject, checksum, checksum_combine
from runai_model_streamer._settings import VERIFY

logger = logging.getLogger("runai_model_streamer")

#: what can be checked by combining the ranges' CRCs, best first (CRC32C has a processor
#: instruction)
CHECKABLE = {"crc32c": CHECKSUM_CRC32C, "crc64nvme": CHECKSUM_CRC64NVME, "crc32": CHECKSUM_CRC32}
#: what can be checked only by hashing the object in order, when a store keeps no CRC: S3's
#: x-amz-checksum-sha1/-sha256, Azure's Content-MD5, the Hub's SHA-256 of LFS files and git
#: blob id of the others (the SHA-1 of "blob <size>\0" and the bytes); fastest first (SHA
#: extensions: 1.8-1.9 GB/s on one core of the development VM, MD5 0.76). Each makes the hash
#: of an object of the size given.
DIGESTS: dict[str, Callable[[int], Any]] = {
    "sha1": lambda size: hashlib.sha1(),
    "sha256": lambda size: hashlib.sha256(),
    "md5": lambda size: hashlib.md5(),
    "git-sha1": lambda size: hashlib.sha1(b"blob %d\0" % size),
}
#: hex digits of each algorithm's value
WIDTHS = {
    "crc32c": 8,
    "crc32": 8,
    "crc64nvme": 16,
    "sha1": 40,
    "sha256": 64,
    "md5": 32,
    "git-sha1": 40,
}


class OrderedDigest:
    """A hash (MD5...) of one object, fed its pieces as they land, in any order: the pieces
    that continue the hashed prefix are hashed in a thread of its own (hashlib lets go of the
    GIL), in file order; the others wait, as views, for the gap before them to land. Each
    piece's memory must stay as it is until the future :meth:`feed` returns is done."""

    def __init__(self, algorithm: str, size: int) -> None:
        self._hash = DIGESTS[algorithm](size)
        self._lock = threading.Lock()
        self._next = 0  # file offset where the hashed (or queued) prefix ends
        self._waiting: dict[int, tuple[memoryview, Future[None]]] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._closed = False

    def feed(self, offset: int, data: memoryview | bytes) -> Future[None]:
        """Bytes [offset, offset + len(data)) of the object; done once they are hashed."""
        done: Future[None] = Future()
        with self._lock:
            self._waiting[offset] = (memoryview(data).cast("B"), done)
            run = []
            while self._next in self._waiting:
                view, piece_done = self._waiting.pop(self._next)
                run.append((view, piece_done))
                self._next += len(view)
            if run:
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(1, thread_name_prefix="runai-digest")
                self._worker.submit(self._update, run)
        return done

    def _update(self, run: list[tuple[memoryview, Future[None]]]) -> None:
        for view, done in run:
            if not self._closed:
                self._hash.update(view)
            done.set_result(None)

    def digest(self) -> tuple[int, int]:
        """Waits for the queued pieces; the value of the hash (big-endian) and how many bytes
        of the object it covers (a prefix)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True)
        return int.from_bytes(self._hash.digest(), "big"), self._next

    def close(self) -> None:
        """Stops hashing (a stream closed early): the pieces queued or waiting are dropped,
        and their futures done (nothing waits for a gap that will not land)."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
            waiting, self._waiting = self._waiting, {}
        for _, done in waiting.values():
            done.set_result(None)
        if worker is not None:
            worker.shutdown(wait=False)


@dataclass
class ObjectCheck:
    """The checksum of one object, built from the CRCs of its ranges as they complete (and,
    for a digest such as MD5, from its bytes hashed in order: :attr:`digest`)."""

    path: str
    algorithm: str
    expected: int
    size: int
    #: called on a mismatch; returns text added to the error (what was done about it)
    on_mismatch: Callable[[], str] | None = None
    _pieces: list[tuple[int, int, int]] = field(default_factory=list)
    _covered: int = 0
    #: hashes the object's bytes in order, for an algorithm of DIGESTS (fed by :meth:`feed`)
    digest: OrderedDigest | None = None
    #: read from a cache entry: the CRC each piece (offset, size) had when it was written, so
    #: a damaged piece is caught before it is handed out (:meth:`damaged`)
    known: Mapping[tuple[int, int], int] = field(default_factory=dict)
    #: called with (offset, size) of a damaged piece, before it is read again from the store
    on_damage: Callable[[int, int], None] | None = None
    #: called with :attr:`pieces` once the object is verified (a cache entry keeps their CRCs)
    on_verified: Callable[[list[tuple[int, int, int]]], None] | None = None
    #: a composite check (S3 multipart): ``expected`` is the CRC of the big-endian CRCs of its
    #: parts, which start at these offsets (the first at 0); no piece added may span two parts
    part_starts: Sequence[int] = ()

    def __post_init__(self) -> None:
        if self.algorithm in DIGESTS and self.digest is None:
            self.digest = OrderedDigest(self.algorithm, self.size)

    @property
    def kind(self) -> int:
        """The CRC the engine computes of each range: the algorithm's own, or CRC32C for a
        digest (a cache entry of the object is checked against it)."""
        return CHECKABLE.get(self.algorithm, CHECKSUM_CRC32C)

    def damaged(self, offset: int, size: int, crc: int) -> bool:
        """Whether a piece read from a cache entry has another CRC than it was written with."""
        expected = self.known.get((offset, size))
        return expected is not None and expected != crc

    def add(self, offset: int, size: int, crc: int) -> None:
        """The CRC of bytes [offset, offset + size) of the object (within one part: see
        :meth:`spans_parts`)."""
        if size:
            self._pieces.append((offset, size, crc))
            self._covered += size

    def spans_parts(self, offset: int, size: int) -> bool:
        """Whether bytes [offset, offset + size) lie in two parts of a composite check: their
        CRC is then added by :meth:`add_bytes`, from the bytes, a CRC for each part."""
        return bool(self.part_starts) and size > 0 and self._part_end(offset) < offset + size

    def _part_end(self, offset: int) -> int:
        """Where the part that byte ``offset`` lies in ends."""
        following = bisect_right(self.part_starts, offset)
        return self.part_starts[following] if following < len(self.part_starts) else self.size

    def add_bytes(self, offset: int, data: memoryview | bytes) -> None:
        view = memoryview(data).cast("B")
        start = 0
        while start < len(view):
            end = len(view)
            if self.part_starts:  # up to the end of the part it starts in
                end = min(end, self._part_end(offset + start) - offset)
            self.add(offset + start, end - start, checksum(self.kind, view[start:end]))
            start = end
        self.feed(offset, data)

    def feed(self, offset: int, data: memoryview | bytes) -> Future[None] | None:
        """The bytes of a range, for a digest (None: this check needs no bytes); the memory
        must stay as it is until the returned future is done."""
        if self.digest is None or not len(data):
            return None
        return self.digest.feed(offset, data)

    @property
    def pieces(self) -> list[tuple[int, int, int]]:
        """``(offset, size, crc)`` of every range added so far."""
        return list(self._pieces)

    def merge(self, pieces: Sequence[tuple[int, int, int]]) -> None:
        """Adds the ranges another reader of the object checksummed (a rank of a shared
        stream); ranges both read (the header every rank reads itself) count once."""
        known = set(self._pieces)
        for offset, size, crc in pieces:
            if (offset, size, crc) not in known:
                known.add((offset, size, crc))
                self.add(offset, size, crc)

    @property
    def complete(self) -> bool:
        return self._covered >= self.size

    def combined_crc(self) -> int:
        """The CRC (:attr:`kind`) of the whole object, combined from its ranges'; raises
        unless they tile it."""
        crc, cursor = 0, 0
        for offset, size, piece in sorted(self._pieces):
            if offset != cursor:
                raise RunaiStreamerError(
                    f"{self.path}: internal error: the ranges checked do not tile the object "
                    f"(byte {cursor} is followed by byte {offset})"
                )
            crc = checksum_combine(self.kind, crc, piece, size)
            cursor += size
        if cursor != self.size:
            raise RunaiStreamerError(
                f"{self.path}: internal error: {cursor} bytes checked of {self.size}"
            )
        return crc

    def verify(self) -> None:
        """Raises ChecksumMismatchError unless the ranges tile the object and their combined
        CRC (or the digest of its bytes) is the one the store keeps."""
        computed = self._composite_crc() if self.part_starts else self.combined_crc()
        if self.digest is not None:
            computed, hashed = self.digest.digest()
            if hashed != self.size:
                raise RunaiStreamerError(
                    f"{self.path}: internal error: {hashed} bytes hashed of {self.size}"
                )
        width = WIDTHS[self.algorithm]
        if computed != self.expected:
            done = self.on_mismatch() if self.on_mismatch is not None else ""
            raise ChecksumMismatchError(
                f"{self.path}: {self.algorithm} mismatch: the store keeps "
                f"{self.expected_hex}{self._composite_note} for its {self.size} bytes, the "
                "bytes read have "
                f"{computed:0{width}x} (corrupted in storage or in transit); nothing of this "
                f"object should be used{done}"
            )
        logger.debug("%s: %s %0*x verified", self.path, self.algorithm, width, computed)
        if self.on_verified is not None:
            self.on_verified(self.pieces)

    @property
    def _composite_note(self) -> str:
        if not self.part_starts:
            return ""
        return (
            f" (the {self.algorithm} of the {self.algorithm}s of its {len(self.part_starts)} "
            "parts: a multipart upload)"
        )

    def _composite_crc(self) -> int:
        """The CRC of the parts' CRCs (big-endian), S3's checksum of a multipart object."""
        self.combined_crc()  # raises unless the pieces tile the object
        starts = set(self.part_starts)
        part_crcs: list[int] = []
        for offset, size, crc in sorted(self._pieces):
            if offset in starts:
                part_crcs.append(crc)
            else:
                part_crcs[-1] = checksum_combine(self.kind, part_crcs[-1], crc, size)
        width = WIDTHS[self.algorithm] // 2
        return checksum(self.kind, b"".join(crc.to_bytes(width, "big") for crc in part_crcs))

    @property
    def expected_hex(self) -> str:
        """The value the store keeps, as it writes it (lowercase hex, zero-padded)."""
        return f"{self.expected:0{WIDTHS[self.algorithm]}x}"

    def entry_checksum(self) -> tuple[str, str]:
        """(algorithm, hex) that a cache entry of the object, once verified, is checked
        against: the store's CRC, or for a digest the CRC32C of the bytes that matched it
        (checked in the engine as the entry is read, with no hashing pass)."""
        if self.digest is None and not self.part_starts:
            return self.algorithm, f"{self.expected:x}"
        if self.digest is None:  # the whole object's CRC, of the algorithm of its parts'
            return self.algorithm, f"{self.combined_crc():x}"
        return "crc32c", f"{self.combined_crc():x}"

    def close(self) -> None:
        """Stops the hashing of a check that will not be verified (a stream closed early)."""
        if self.digest is not None:
            self.digest.close()


def check_for(path: str, stored: StoredObject, mode: str) -> tuple[ObjectCheck | None, str]:
    """How ``path`` (an object whose store says ``stored``) is checked when read whole: the
    check, or None and why it is not checked."""
    if mode == "off":
        return None, "RUNAI_STREAMER_VERIFY=off"
    for algorithm in (*CHECKABLE, *DIGESTS):
        value = stored.checksums.get(algorithm)
        if value is None:
            continue
        try:
            expected = int(value, 16)
        except ValueError:
            return None, f"the store's {algorithm} {value!r} is not a hex number"
        return ObjectCheck(path, algorithm, expected, stored.size), ""
    composite = _composite_check(path, stored)
    if composite is not None:
        return composite, ""
    return None, _why_unchecked(stored.checksums)


def _composite_check(path: str, stored: StoredObject) -> ObjectCheck | None:
    """The check of S3's checksum of a multipart object's parts' checksums
    (``composite-<algorithm>=<hex>-<parts>``), where the plugin learnt the sizes of its parts
    (``parts=<size>*<count>/...``, runs in order, which must tile the object)."""
    starts = _part_starts(stored.checksums.get("parts", ""), stored.size)
    for name, value in stored.checksums.items():
        algorithm = name.removeprefix("composite-")
        if algorithm == name or algorithm not in CHECKABLE:
            continue
        digits, _, count = value.partition("-")
        try:
            expected, parts = int(digits, 16), int(count)
        except ValueError:
            return None
        if starts and len(starts) == parts:
            return ObjectCheck(path, algorithm, expected, stored.size, part_starts=starts)
    return None


def _part_starts(layout: str, size: int) -> tuple[int, ...]:
    """The offsets where the parts of ``layout`` (``<size>*<count>/...``) start; () unless
    they are parts of at least one byte that add up to ``size``."""
    starts: list[int] = []
    offset = 0
    for run in filter(None, layout.split("/")):
        part, _, count = run.partition("*")
        try:
            part_size, part_count = int(part), int(count)
        except ValueError:
            return ()
        if part_size < 1 or not 1 <= part_count <= 10_000 - len(starts):  # S3's most parts
            return ()
        starts.extend(range(offset, offset + part_size * part_count, part_size))
        offset += part_size * part_count
    return tuple(starts) if offset == size else ()


def _why_unchecked(checksums: Mapping[str, str]) -> str:
    composite = [name for name in checksums if name.startswith("composite-")]
    if composite:
        layout = checksums.get("parts")
        sizes = f"({layout}) do not add up to its bytes and parts" if layout else "are not known"
        return (
            f"the store keeps only {composite[0].removeprefix('composite-')} checksums of its "
            f"parts (a multipart upload), whose sizes {sizes}"
        )
    if checksums:
        names = ", ".join(sorted(checksums))
        return f"the store keeps only {names}, which cannot be computed from ranges as they land"
    return "the store keeps no checksum of it"


def verify_mode() -> str:
    return VERIFY.read()


@dataclass
class VerifyReport:
    """What a stream checked and did not: one line in its log, and the ``require`` rule."""

    mode: str
    checked: list[ObjectCheck] = field(default_factory=list)
    unchecked: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str, check: ObjectCheck | None, why: str) -> None:
        if check is not None:
            self.checked.append(check)
        else:
            self.unchecked.append((path, why))

    def enforce(self) -> None:
        """With ``require``: raises ChecksumUnavailableError naming every unchecked object."""
        if self.mode != "require" or not self.unchecked:
            return
        listed = "; ".join(f"{path}: {why}" for path, why in self.unchecked[:10])
        more = len(self.unchecked) - 10
        raise ChecksumUnavailableError(
            f"RUNAI_STREAMER_VERIFY=require, and {len(self.unchecked)} object(s) cannot be "
            f"checked: {listed}{f' (and {more} more)' if more > 0 else ''}"
        )

    def summary(self) -> str:
        """ "" for a stream of no object; else what was checked and what not."""
        if not self.checked and not self.unchecked:
            return ""
        parts = []
        if self.checked:
            algorithms = sorted({c.algorithm for c in self.checked})
            parts.append(f"verified {'/'.join(algorithms)} of {len(self.checked)} object(s)")
        if self.unchecked:
            path, why = self.unchecked[0]
            more = f" and {len(self.unchecked) - 1} more" if len(self.unchecked) > 1 else ""
            parts.append(f"unchecked: {path} ({why}){more}")
        return "; ".join(parts)
