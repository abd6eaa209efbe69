"""Cache hits confirmed while they are read: when every object of a stream has a cache entry,
the entries are read at once while a thread asks the store whether they are still its objects
(:class:`HitConfirmation`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from runai_model_streamer._backends import register_backends, uri_scheme
from runai_model_streamer._cache import Cache
from runai_model_streamer._cache_entry import CacheKey
from runai_model_streamer._native import Engine, StoredObject

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials
    from runai_model_streamer._headers import RemoteObject


def all_cached(cache: Cache, paths: Sequence[str]) -> bool:
    """Whether every object among ``paths`` (there is one at least) has an entry in ``cache``,
    whatever its version: then a stream reads the entries at once, while
    :class:`HitConfirmation` asks the store whether they are still its objects."""
    remote = [path for path in paths if uri_scheme(path) is not None]
    return bool(remote) and all(cache.has_entry(path) for path in remote)


class HitConfirmation:
    """Asks the store, in a thread of its own, what the objects among ``paths`` are now: it
    registers their backends with ``engine`` (credential discovery, loading the plugins) and
    makes each object's HEAD, the work a hit otherwise waits for before its first read."""

    def __init__(
        self, engine: Engine, paths: Sequence[str], credentials: S3Credentials | None
    ) -> None:
        self._engine = engine
        self._registered = threading.Event()
        self._infos: Mapping[str, StoredObject] | None = None
        self._error: Exception | None = None
        remote = [path for path in paths if uri_scheme(path) is not None]
        self._thread = threading.Thread(
            target=self._run, args=(remote, credentials), name="runai-hit-confirmation"
        )
        self._thread.start()

    def _run(self, remote: list[str], credentials: S3Credentials | None) -> None:
        try:
            try:
                register_backends(self._engine, remote, credentials)
            finally:
                self._registered.set()
            with ThreadPoolExecutor(max_workers=min(16, len(remote))) as pool:
                infos = list(pool.map(self._engine.object_info, remote))
            self._infos = dict(zip(remote, infos, strict=True))
        except Exception as error:  # said by refutes(); the store's path raises it again
            self._error = error

    def engine(self) -> Engine:
        """The engine, once its backends are registered (for an object that needs the store
        after all: its entry went away meanwhile)."""
        self._registered.wait()
        return self._engine

    def refutes(self, paths: Sequence[str], objects: Sequence[RemoteObject | None]) -> str:
        """Waits for the answers; why the entries read cannot serve the stream ("" when each
        is the store's current object)."""
        self._thread.join()
        if self._error is not None or self._infos is None:
            return f"the store did not confirm them ({self._error})"
        for path, obj in zip(paths, objects, strict=True):
            if obj is None or obj.cached is None:
                continue
            info = self._infos[path]
            if CacheKey.of(path, info.version, info.size) != obj.cached.meta.key:
                return f"{path} changed in its store since it was cached"
        return ""
