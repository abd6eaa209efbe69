"""FileChunks: the byte ranges of one file that FileStreamer reads.

Re-exported with ``RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME`` at upstream's module path
(``runai_model_streamer.file_streamer.requests_iterator``), so callers' imports keep working.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from runai_model_streamer._backends import to_engine_path
from runai_model_streamer._settings import MEMORY_LIMIT

__all__ = ["RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME", "FileChunks"]

RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME = MEMORY_LIMIT.name


def _non_negative_ints(values: Iterable[int], what: str, path: str) -> list[int]:
    result = list(values)
    # one pass in C for the common case (100,000 offsets: 3 ms, not 100)
    if set(map(type, result)) <= {int} and min(result, default=0) >= 0:
        return result
    values, result = result, []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{path}: {what} must be non-negative integers, got {value!r}")
        result.append(int(value))
    return result


class FileChunks:
    """Byte ranges ("chunks") of one file: chunk i is ``sizes[i]`` bytes at ``offsets[i]``.

    Both upstream forms are accepted:

    - ``FileChunks(id, path, offsets, sizes)`` (0.17): one offset per chunk;
    - ``FileChunks(id, path, offset, chunks)`` (0.15): a single integer offset and the chunk
      sizes, the chunks following each other from there (the same as :meth:`contiguous`).
      The keywords ``offset=`` and ``chunks=`` spell this form too.
    """

    def __init__(
        self,
        id: int,
        path: str | os.PathLike[str],
        offsets: int | Sequence[int] | None = None,
        sizes: Sequence[int] | None = None,
        *,
        offset: int | None = None,
        chunks: Sequence[int] | None = None,
    ) -> None:
        self.id = id
        self.path = to_engine_path(path)
        if offset is not None:
            if offsets is not None:
                raise TypeError(f"{self.path}: pass offsets or offset, not both")
            offsets = offset
        if chunks is not None:
            if sizes is not None:
                raise TypeError(f"{self.path}: pass sizes or chunks, not both")
            sizes = chunks
        if offsets is None or sizes is None:
            raise TypeError(
                f"{self.path}: FileChunks needs offsets (or offset) and sizes (or chunks)"
            )
        self.sizes = _non_negative_ints(sizes, "sizes", self.path)
        if isinstance(offsets, int) and not isinstance(offsets, bool):
            start = _non_negative_ints([offsets], "offsets", self.path)[0]
            self.offsets = []
            for size in self.sizes:
                self.offsets.append(start)
                start += size
        elif isinstance(offsets, Iterable):
            self.offsets = _non_negative_ints(offsets, "offsets", self.path)
        else:
            raise TypeError(
                f"{self.path}: offsets must be integers or one integer, got {offsets!r}"
            )
        if len(self.offsets) != len(self.sizes):
            raise ValueError(
                f"{self.path}: {len(self.offsets)} offsets but {len(self.sizes)} sizes"
            )

    @classmethod
    def contiguous(
        cls, id: int, path: str | os.PathLike[str], offset: int, sizes: Sequence[int]
    ) -> FileChunks:
        """Chunks that follow each other, the first at ``offset``."""
        return cls(id, path, offset, sizes)

    @property
    def chunks(self) -> list[int]:
        """The chunk sizes (alias of ``sizes``)."""
        return self.sizes

    @property
    def offset(self) -> int:
        """Offset of the first chunk (0 when there are none)."""
        return self.offsets[0] if self.offsets else 0

    def total_size(self) -> int:
        """Bytes of all chunks together."""
        return sum(self.sizes)

    def max_chunk_size(self) -> int:
        """Bytes of the largest chunk (0 when there are none)."""
        return max(self.sizes, default=0)

    def __repr__(self) -> str:
        return f"FileChunks(id={self.id!r}, path={self.path!r}, chunks={len(self.sizes)})"
