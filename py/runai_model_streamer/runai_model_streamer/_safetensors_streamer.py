"""SafetensorsStreamer: stream the tensors of safetensors files into torch tensors.

Re-exported at upstream's paths (``runai_model_streamer.safetensors_streamer`` and its
``safetensors_streamer`` module) and by the package.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from runai_model_streamer._backends import after_cached, resolve_uris
from runai_model_streamer._cache import Cache, CachedObject, open_cache
from runai_model_streamer._cache_entry import CacheWriter
from runai_model_streamer._collectives import failures_reported, gather_unless_failed
from runai_model_streamer._common import (
    PathLike,
    check_device,
    check_paths,
    format_bytes,
    logger,
)
from runai_model_streamer._distributed import shares_local_reads
from runai_model_streamer._file_chunks import FileChunks
from runai_model_streamer._headers import RemoteObject, read_from_store, read_headers
from runai_model_streamer._hit_confirmation import HitConfirmation, all_cached
from runai_model_streamer._reader import DistributedStreamer
from runai_model_streamer._safetensors import (
    SafetensorsHeader,
    TensorMetadata,
    gc_paused,
)
from runai_model_streamer._settings import CACHE_OFFLINE, MEMORY_LIMIT
from runai_model_streamer._tensors import (
    DtypeTable,
    TensorViews,
    dtype_table,
    run_tensor_code_once,
    torch_dtype,
    torch_shape,
)
from runai_model_streamer._verify import ObjectCheck, VerifyReport, verify_mode

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials
    from runai_model_streamer._distributed import Share

__all__ = ["SafetensorsStreamer", "torch_dtype", "torch_shape"]


def _describe_limit(memory_limit: int) -> str:
    if memory_limit < 0:
        return "no memory limit"
    return f"memory limit {format_bytes(memory_limit) if memory_limit else 'the largest tensor'}"


def _check_tensor_names(tensor_names: Iterable[str] | None) -> set[str] | None:
    if tensor_names is None:
        return None
    if isinstance(tensor_names, str | bytes):
        raise TypeError(
            f"tensor_names must be a collection of names, not a single string ({tensor_names!r})"
        )
    names = list(tensor_names)
    if not names:
        raise ValueError("tensor_names is empty; pass None to stream every tensor")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"tensor_names must hold strings, got {name!r}")
    return set(names)


def _checks(
    objects: Sequence[RemoteObject | None],
    headers: Sequence[SafetensorsHeader],
    selected: Sequence[Sequence[TensorMetadata]],
    report: VerifyReport,
    shared: bool,
) -> list[ObjectCheck | None]:
    """The check of each object that is read whole (what is not, and why, into ``report``);
    ``shared``: the ranks of a group share the stream (each reads pieces of each object)."""
    checks: list[ObjectCheck | None] = []
    for header, tensors, obj in zip(headers, selected, objects, strict=True):
        if obj is None:  # a local file
            checks.append(None)
            continue
        check, why = obj.check, obj.why
        if check is not None and len(tensors) != len(header.tensors):
            check, why = None, "only some of its tensors were read (tensor_names)"
        if check is not None and shared and check.digest is not None:
            why = (
                f"the store keeps only {check.algorithm}, which the ranks of a shared stream "
                "cannot combine from the pieces each reads"
            )
            check = None
        if check is None and obj.check is not None:
            obj.check.close()  # not verified after all: its hashing thread stops
        report.add(header.path, check, why)
        checks.append(check)
    return checks


def _entries_read(objects: Sequence[RemoteObject | None]) -> list[CachedObject]:
    """The cache entries a stream reads (held until it ends)."""
    return [o.cached for o in objects if o is not None and o.cached is not None]


def _writer(
    cache: Cache | None, obj: RemoteObject | None, check: ObjectCheck | None, shared: bool
) -> CacheWriter | None:
    """The cache writer of an object read whole and verified, not cached yet; it starts with
    the bytes already read (the header). ``shared``: the writer records the CRC of each piece
    it writes (see :meth:`~runai_model_streamer._cache_entry.CacheWriter.write_pieces`)."""
    if cache is None or obj is None or obj.cached is not None or obj.key is None or not check:
        return None
    writer = cache.writer(obj.key)
    if writer is not None:
        if shared:
            writer.write_pieces(obj.head, [(0, 0, len(obj.head))], check.kind)
        else:
            writer.write(0, obj.head)
        writer.after_commit = after_cached(obj.key.uri, (check.algorithm, check.expected_hex))
    return writer


def _select(
    headers: Sequence[SafetensorsHeader], names: set[str] | None, paths: Sequence[str]
) -> list[list[TensorMetadata]]:
    """Each file's tensors to stream: all, or those named (a name found nowhere: KeyError)."""
    if names is None:
        return [list(header.tensors) for header in headers]
    selected = [[t for t in header.tensors if t.name in names] for header in headers]
    missing = sorted(names - {t.name for tensors in selected for t in tensors})
    if missing:
        raise KeyError(
            f"tensors not found in {', '.join(paths) or 'no files'}: "
            + ", ".join(repr(n) for n in missing)
        )
    return selected


class SafetensorsStreamer:
    """Streams tensors of safetensors files (local paths or object-storage URIs).

    Use as a context manager::

        with SafetensorsStreamer() as streamer:
            streamer.stream_files(paths)
            for name, tensor in streamer.get_tensors():
                ...

    ``get_tensors()`` yields ``(name, tensor)`` as soon as each tensor's bytes have arrived:
    files in the given order; within a file in completion order (which follows file order
    closely, but is not guaranteed). Reading starts in ``stream_files``.

    ``files_to_tensors_metadata`` maps each file's index in ``paths`` to the metadata of the
    tensors that will be streamed from it, sorted by offset in the file. ``total_size`` is the
    number of bytes of those tensors.

    Ownership: with ``owned=True`` (default) every tensor is the caller's: it views memory that
    nothing writes to again and that is freed when the last tensor using it is collected.
    With ``owned=False`` destination buffers are reused: a tensor stays valid only until the
    iteration moves past its window (its file, or its memory-limit window when
    RUNAI_STREAMER_MEMORY_LIMIT is set); copy what you need to keep before that.

    Tensors whose offset in the file is misaligned for their dtype are copied into aligned
    memory. ``device`` other than CPU: each tensor is moved there with ``Tensor.to``.

    ``is_distributed=True``: the ranks of a torch.distributed group (``process_group``, default
    the ranks on this node) each read a share of the tensors' bytes and exchange them, so
    every rank gets every tensor while the storage serves each byte once (see
    :class:`~runai_model_streamer.distributed_streamer.DistributedStreamer`). Every rank must
    stream the same files and ``tensor_names``; tensors then come in file order, a file's
    tensors by offset. Without torch.distributed, or with one rank, it streams alone.
    """

    def __init__(
        self, process_group: object | None = None, cache_dir: PathLike | None = None
    ) -> None:
        self.process_group = process_group
        #: the local cache of objects (None: RUNAI_STREAMER_CACHE_DIR's, unset: no cache)
        self.cache_dir = cache_dir
        #: reads the tensors' bytes (upstream's attribute name and class)
        self.file_streamer = DistributedStreamer(process_group)
        self.files_to_tensors_metadata: dict[int, list[TensorMetadata]] = {}
        self.total_size = 0
        self.device_str: str | None = None
        self._dtypes: DtypeTable = {}
        self._device = torch.device("cpu")
        self._start_time = 0.0
        self._paths: list[str] = []
        self._report = VerifyReport("off")
        self._settings = ""
        self._cached: list[CachedObject] = []  # entries read by the stream (held till it ends)

    def __enter__(self) -> SafetensorsStreamer:
        self.file_streamer.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancels any stream in flight and frees the native streamer."""
        self.file_streamer.close()
        self._release_cached()

    def _release_cached(self) -> None:
        for entry in self._cached:
            entry.release()
        self._cached = []

    def stream_file(
        self,
        path: PathLike,
        s3_credentials: S3Credentials | None = None,
        device: str | torch.device | None = "cpu",
        is_distributed: bool = False,
        tensor_names: Iterable[str] | None = None,
        owned: bool = True,
        cache_dir: PathLike | None = None,
    ) -> None:
        """Starts streaming one file; see :meth:`stream_files`."""
        self.stream_files(
            [path],
            s3_credentials=s3_credentials,
            device=device,
            is_distributed=is_distributed,
            tensor_names=tensor_names,
            owned=owned,
            cache_dir=cache_dir,
        )

    @gc_paused()  # the headers and the plan: a few containers per tensor
    def stream_files(
        self,
        paths: Sequence[PathLike],
        s3_credentials: S3Credentials | None = None,
        device: str | torch.device | None = "cpu",
        is_distributed: bool = False,
        tensor_names: Iterable[str] | None = None,
        owned: bool = True,
        cache_dir: PathLike | None = None,
    ) -> None:
        """Validates every file's header, then starts reading; collect with get_tensors().

        ``tensor_names`` restricts the stream to those tensors (a name missing from every file
        raises KeyError). ``cache_dir``: the local cache of objects (default: the streamer's,
        else ``RUNAI_STREAMER_CACHE_DIR``; see the README's "Cache"). Any stream still in
        flight on this streamer is cancelled first.

        When every object has a cache entry, the entries are read at once while a thread asks
        the store whether they are still its objects; this returns once it said so (else the
        stream starts over from the store), so nothing of a stale entry is ever seen.
        """
        self._start_time = time.perf_counter()
        arguments = (paths, s3_credentials, device, is_distributed, tensor_names, owned, cache_dir)
        if not self._start(*arguments, speculate=True):
            self._start(*arguments, speculate=False)

    def _start(
        self,
        paths: Sequence[PathLike],
        s3_credentials: S3Credentials | None,
        device: str | torch.device | None,
        is_distributed: bool,
        tensor_names: Iterable[str] | None,
        owned: bool,
        cache_dir: PathLike | None,
        speculate: bool,
    ) -> bool:
        """:meth:`stream_files`; ``speculate``: cache entries may be read before the store
        confirmed them. False: they were not confirmed, and nothing was started."""
        resolved_device = check_device(device)
        share = self.file_streamer.share_for(is_distributed, resolved_device, paths)
        reader = self.file_streamer
        reader.cancel()
        self._release_cached()
        confirmation = None
        with failures_reported(share):
            engine_paths = check_paths(paths)
            names = _check_tensor_names(tensor_names)
            memory_limit = MEMORY_LIMIT.read()
            cache = open_cache(cache_dir or self.cache_dir)
            offline = CACHE_OFFLINE.read()
            report = VerifyReport(verify_mode())
            speculate = speculate and share is None and not offline
            if speculate and cache is not None and all_cached(cache, engine_paths):
                engine = reader.prepare(engine_paths, s3_credentials, register=False)
                confirmation = HitConfirmation(engine, engine_paths, s3_credentials)
                headers, objects = read_headers(
                    engine_paths, confirmation.engine, report.mode, cache, offline=True
                )
            else:
                engine = reader.prepare(engine_paths, s3_credentials)
                engine_paths = resolve_uris(engine, engine_paths)
                headers, objects = read_headers(
                    engine_paths, reader.engine, report.mode, cache, offline
                )
            self._cached = _entries_read(objects)
        if share is not None:
            agreed = self._hits_on_every_rank(share, objects)
            if all(agreed) and not shares_local_reads(share):  # the same verdict on every rank
                share = None  # every object is a local file now
        with failures_reported(share):
            if share is not None:  # a hit that another rank lacks is read from the store
                objects = [
                    read_from_store(path, obj, engine, report.mode)
                    if obj is not None and obj.cached is not None and not hit
                    else obj
                    for path, obj, hit in zip(engine_paths, objects, agreed, strict=True)
                ]
                self._cached = _entries_read(objects)
            selected = _select(headers, names, engine_paths)
            checks = _checks(objects, headers, selected, report, share is not None)
            report.enforce()
            # an object read whole, verified and not cached yet is written to the cache as
            # it streams
            writers = [
                _writer(cache, obj, check, share is not None)
                for obj, check in zip(objects, checks, strict=True)
            ]
            read_paths = [
                str(obj.cached.data) if obj is not None and obj.cached is not None else path
                for path, obj in zip(engine_paths, objects, strict=True)
            ]
            # a damaged piece of a cache entry is read again from there
            stores = [
                path if obj is not None and obj.cached is not None else None
                for path, obj in zip(engine_paths, objects, strict=True)
            ]
            dtypes = dtype_table(selected)
        self.files_to_tensors_metadata = dict(enumerate(selected))
        self.total_size = sum(t.size for tensors in selected for t in tensors)
        self.device_str = str(resolved_device)
        self._device = resolved_device
        self._dtypes = dtypes
        self._paths = engine_paths
        self._report = report
        self._settings = f"concurrency {engine.config.concurrency}, {_describe_limit(memory_limit)}"
        run_tensor_code_once(dtypes, resolved_device)
        requests = [
            FileChunks(position, path, [t.offset for t in tensors], [t.size for t in tensors])
            for position, (path, tensors) in enumerate(zip(read_paths, selected, strict=True))
        ]
        self.file_streamer.start(
            share,
            requests,
            torch.device("cpu"),
            memory_limit,
            owned,
            describe=self._describe,
            checks=checks,
            writers=writers,
            stores=stores,
            object_sizes=[header.file_size for header in headers],
            starts=[b"" if obj is None else obj.start for obj in objects],
        )
        if confirmation is not None:
            why = confirmation.refutes(engine_paths, objects)
            if why:
                logger.info("cache entries read while the store was asked not taken: %s", why)
                reader.cancel()
                self._release_cached()
                return False
        return True

    def _hits_on_every_rank(
        self, share: Share, objects: Sequence[RemoteObject | None]
    ) -> list[bool]:
        """Which objects every rank of a shared stream has a cache entry of (of the same
        version): only those are read from the entries, for the ranks read pieces of the same
        bytes and check them alike. Collective (a rank that failed is told to the others)."""
        keys = [o.cached.meta.key if o is not None and o.cached else None for o in objects]
        try:
            gathered = gather_unless_failed(share, keys, what="agreeing on cache hits")
        except BaseException:
            self._release_cached()
            raise
        return [
            key is not None and all(k[i] == key for k in gathered) for i, key in enumerate(keys)
        ]

    def _describe(self, position: int, item: int) -> str:
        meta = self.files_to_tensors_metadata[position][item]
        return f"tensor {meta.name!r} (bytes {meta.offset}..{meta.offset + meta.size})"

    def get_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields ``(name, tensor)`` for every streamed tensor (see the class docstring)."""
        metadata = self.files_to_tensors_metadata
        if not self.file_streamer.streaming:
            raise RuntimeError("get_tensors() called before stream_file()/stream_files()")
        make = TensorViews(self._dtypes).make
        device = self._device
        count = 0
        for position, item, base, start, size in self.file_streamer.pieces():
            meta = metadata[position][item]
            tensor = make(meta, base, start, size)
            if tensor.device != device:
                tensor = tensor.to(device)
            count += 1
            yield meta.name, tensor
        cached = len(self._cached)
        self._release_cached()
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        verified = self._report.summary()
        if cached:
            verified = f"{cached} from the cache" + (f", {verified}" if verified else "")
        logger.info(
            "streamed %d tensors from %d files: %s in %.2f s (%.2f GB/s) to %s%s (%s)%s",
            count,
            len(self._paths),
            format_bytes(self.total_size),
            elapsed,
            self.total_size / elapsed / 1e9,
            self.device_str,
            " (shared with other ranks)" if self.file_streamer.is_distributed else "",
            self._settings,
            f"; {verified}" if verified else "",
        )
