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
``x-amz-checksum-crc32c``), CRC64/NVME and CRC32 (S3). Not checkable while streaming: MD5 (GCS,
Azure's Content-MD5) and S3's checksums of a multipart upload's parts (composite), whose part
sizes the HEAD does not give. ``RUNAI_STREAMER_VERIFY``: ``auto`` (default) checks what there
is, ``require`` refuses to stream an object it cannot check, ``off`` checks nothing. Local files
keep no checksum and are never checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from runai_model_streamer._abi import CHECKSUM_CRC32, CHECKSUM_CRC32C, CHECKSUM_CRC64NVME
from runai_model_streamer._errors import (
    ChecksumMismatchError,
    ChecksumUnavailableError,
    RunaiStreamerError,
)
from runai_model_streamer._native import StoredObject, checksum, checksum_combine
from runai_model_streamer._settings import VERIFY

logger = logging.getLogger("runai_model_streamer")

#: what can be checked, best first (CRC32C has a processor instruction)
CHECKABLE = {"crc32c": CHECKSUM_CRC32C, "crc64nvme": CHECKSUM_CRC64NVME, "crc32": CHECKSUM_CRC32}


@dataclass
class ObjectCheck:
    """The checksum of one object, built from the CRCs of its ranges as they complete."""

    path: str
    algorithm: str
    expected: int
    size: int
    #: called on a mismatch; returns text added to the error (what was done about it)
    on_mismatch: Callable[[], str] | None = None
    _pieces: list[tuple[int, int, int]] = field(default_factory=list)
    _covered: int = 0

    @property
    def kind(self) -> int:
        return CHECKABLE[self.algorithm]

    def add(self, offset: int, size: int, crc: int) -> None:
        """The CRC of bytes [offset, offset + size) of the object."""
        if size:
            self._pieces.append((offset, size, crc))
            self._covered += size

    def add_bytes(self, offset: int, data: bytes) -> None:
        self.add(offset, len(data), checksum(self.kind, data))

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

    def verify(self) -> None:
        """Raises ChecksumMismatchError unless the ranges tile the object and their combined
        CRC is the one the store keeps."""
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
        if crc != self.expected:
            width = 16 if self.kind == CHECKSUM_CRC64NVME else 8
            done = self.on_mismatch() if self.on_mismatch is not None else ""
            raise ChecksumMismatchError(
                f"{self.path}: {self.algorithm} mismatch: the store keeps "
                f"{self.expected:0{width}x} for its {self.size} bytes, the bytes read have "
                f"{crc:0{width}x} (corrupted in storage or in transit); nothing of this object "
                f"should be used{done}"
            )
        logger.debug("%s: %s %0*x verified", self.path, self.algorithm, 8, crc)


def check_for(path: str, stored: StoredObject, mode: str) -> tuple[ObjectCheck | None, str]:
    """How ``path`` (an object whose store says ``stored``) is checked when read whole: the
    check, or None and why it is not checked."""
    if mode == "off":
        return None, "RUNAI_STREAMER_VERIFY=off"
    for algorithm in CHECKABLE:
        value = stored.checksums.get(algorithm)
        if value is None:
            continue
        try:
            expected = int(value, 16)
        except ValueError:
            return None, f"the store's {algorithm} {value!r} is not a hex number"
        return ObjectCheck(path, algorithm, expected, stored.size), ""
    return None, _why_unchecked(stored.checksums)


def _why_unchecked(checksums: Mapping[str, str]) -> str:
    composite = [name for name in checksums if name.startswith("composite-")]
    if composite:
        return (
            f"the store keeps only {composite[0].removeprefix('composite-')} checksums of its "
            "parts (a multipart upload), whose sizes are not known"
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
