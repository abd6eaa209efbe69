"""Object-storage backend plugins, found through entry points.

A plugin distribution (``runai-model-streamer-s3``...) declares an entry point in the group
``runai_model_streamer.backends`` whose name is the URI scheme it serves (``s3``, ``gs``, ``az``;
``testfs`` for the test plugin) and whose value is a module with:

``library_path() -> str``
    Absolute path of the plugin's native library, inside the plugin's own package.
``backend_options(credentials: S3Credentials | None) -> dict[str, str]``
    Options handed to ``runai_streamer_register_backend`` (credentials, endpoint, region...).
``on_cached(uri: str, checksum: tuple[str, str], data: str) -> None``
    Optional: ``uri``, verified as ``checksum`` (algorithm, hex), was committed to the local
    cache, its bytes in the file ``data`` (hf://: shared with huggingface_hub's cache).
``resolve_uris(uris: list[str], object_info: Callable[[str], StoredObject]) -> list[str]``
    Optional: the URIs one stream reads, resolved: pinned to what they name now (hf://: a
    branch to its commit, so that every object of one load comes from the same state of the
    store), or replaced by the path of a local file known to hold the same bytes (hf://: the
    file in huggingface_hub's cache).

The core registers the backend with its engine, by absolute path, the first time a URI with that
scheme is streamed (and again when the options change).

A scheme of :data:`PLUGIN_DISTRIBUTIONS` is served by that distribution when it is installed
(looked up by name: one directory listing, where scanning every installed distribution's entry
points takes 4-10 ms, as long as a round trip to a nearby store); any other scheme by the first
plugin found in ``sys.path`` order.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from runai_model_streamer._errors import BackendError, BackendNotInstalledError

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials
    from runai_model_streamer._native import Engine

ENTRY_POINT_GROUP = "runai_model_streamer.backends"

#: scheme -> (distribution to install, extra of runai-model-streamer that pulls it)
PLUGIN_DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "s3": ("runai-model-streamer-s3", "s3"),
    "gs": ("runai-model-streamer-gcs", "gcs"),
    "az": ("runai-model-streamer-azure", "azure"),
    "https": ("runai-model-streamer-azure", "azure"),  # https://<account>.blob.core.windows.net
    "hf": ("runai-model-streamer-hf", "hf"),
}

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def uri_scheme(path: str) -> str | None:
    """``"s3://bucket/key"`` -> ``"s3"``; a local path (or ``file://`` URI) -> None."""
    match = _SCHEME_RE.match(path)
    if match is None:
        return None
    scheme = match.group(1).lower()
    return None if scheme == "file" else scheme


def all_object_storage(paths: object) -> bool:
    """Whether ``paths`` is a non-empty list of object-storage URIs only (False for anything
    that is not a list of paths: the checks that raise come later)."""
    try:
        names = [os.fspath(p) for p in paths]  # type: ignore[attr-defined]
    except TypeError:
        return False
    return bool(names) and all(isinstance(n, str) and uri_scheme(n) is not None for n in names)


def to_engine_path(path: str | os.PathLike[str]) -> str:
    """The string handed to the engine: local paths as given, ``file://`` URIs as local paths."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"paths must be str or os.PathLike[str], got {type(path).__name__}")
    if text.lower().startswith("file://"):
        return text[len("file://") :]
    return text


CORE_DISTRIBUTION = "runai-model-streamer"


def core_origin() -> dict[str, Any] | None:
    """The core's ``direct_url.json`` (PEP 610: installed from a checkout, a wheel file or a
    URL rather than from an index), or None."""
    try:
        text = importlib.metadata.distribution(CORE_DISTRIBUTION).read_text("direct_url.json")
        origin = json.loads(text) if text else None
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    return origin if isinstance(origin, dict) else None


def install_hint(scheme: str, origin: dict[str, Any] | None) -> str:
    """What to install for ``scheme``; ``origin`` is :func:`core_origin`'s answer. A core that
    did not come from an index is never told to ``pip install "runai-model-streamer[...]"``:
    that would resolve to the index's package of the same name and replace it."""
    known = PLUGIN_DISTRIBUTIONS.get(scheme)
    if known is None:
        return f"no installed package declares a '{ENTRY_POINT_GROUP}' entry point named '{scheme}'"
    distribution, extra = known
    if origin is None:
        version = importlib.metadata.version(CORE_DISTRIBUTION)
        hint = f'install {distribution}: pip install "{CORE_DISTRIBUTION}[{extra}]=={version}"'
    else:
        url = str(origin.get("url", ""))
        checkout = urllib.parse.unquote(url.removeprefix("file://"))
        plugin = os.path.join(checkout, "py", distribution.replace("-", "_"))
        if url.startswith("file://") and "dir_info" in origin and os.path.isdir(plugin):
            hint = (
                f"install {distribution} from the checkout this core was installed from: "
                f"pip install {shlex.quote(plugin)}"
            )
        else:
            hint = (
                f"install {distribution} built from the same source as this core ({url}); not "
                f"from the package index, whose {CORE_DISTRIBUTION}[{extra}] would replace "
                "this core"
            )
    if scheme == "https":
        hint += " (https:// URLs are read as Azure Blob URLs)"
    return hint


@dataclass(frozen=True)
class BackendPlugin:
    scheme: str
    entry_point: importlib.metadata.EntryPoint

    @property
    def module_name(self) -> str:
        return self.entry_point.value

    @property
    def distribution(self) -> str | None:
        dist = getattr(self.entry_point, "dist", None)
        return None if dist is None else f"{dist.metadata['Name']} {dist.version}"

    def load(self) -> ModuleType:
        try:
            module: ModuleType = self.entry_point.load()
        except Exception as error:
            raise BackendError(
                f"the backend plugin for {self.scheme}:// ({self.module_name}) failed to import: "
                f"{type(error).__name__}: {error}"
            ) from error
        for attribute in ("library_path", "backend_options"):
            if not callable(getattr(module, attribute, None)):
                raise BackendError(
                    f"the backend plugin for {self.scheme}:// ({self.module_name}) has no "
                    f"{attribute}() function"
                )
        return module

    def library_path(self, module: ModuleType | None = None) -> str:
        """The plugin's library, an absolute path (``module``: the plugin, where loaded)."""
        path = str((module or self.load()).library_path())
        if not os.path.isabs(path):
            raise BackendError(
                f"the backend plugin for {self.scheme}:// ({self.module_name}) returned a "
                f"relative library path {path!r}; it must be absolute"
            )
        return path


#: the plugins found by the last scan of the installed entry points (None: not scanned yet)
_installed: dict[str, BackendPlugin] | None = None


def find_backends(rescan: bool = False) -> dict[str, BackendPlugin]:
    """Installed plugins by scheme. The scan reads every installed distribution's metadata, so
    it is made once per process, and again on ``rescan``."""
    global _installed
    if _installed is None or rescan:
        found: dict[str, BackendPlugin] = {}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            scheme = entry_point.name.lower()
            found.setdefault(scheme, BackendPlugin(scheme, entry_point))
        for scheme in found.keys() & PLUGIN_DISTRIBUTIONS.keys():
            found[scheme] = _plugin_of_distribution(scheme) or found[scheme]
        _installed = found
    return dict(_installed)


#: the project's own plugins found so far, by scheme: a stream looks its plugins up several
#: times (and once per object it caches), each lookup a directory listing and a file read
_own: dict[str, BackendPlugin] = {}


def _plugin_of_distribution(scheme: str) -> BackendPlugin | None:
    """The plugin for ``scheme`` of its own distribution (:data:`PLUGIN_DISTRIBUTIONS`), if
    that is installed and declares it."""
    if scheme in _own:
        return _own[scheme]
    known = PLUGIN_DISTRIBUTIONS.get(scheme)
    if known is None:
        return None
    try:
        distribution = importlib.metadata.distribution(known[0])
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry_point in distribution.entry_points.select(group=ENTRY_POINT_GROUP):
        if entry_point.name.lower() == scheme:
            plugin = _own[scheme] = BackendPlugin(scheme, entry_point)
            return plugin
    return None


def find_backend(scheme: str, uri: str) -> BackendPlugin:
    plugin = (
        _plugin_of_distribution(scheme)
        or find_backends().get(scheme)
        or find_backends(rescan=True).get(scheme)  # installed since the last scan?
    )
    if plugin is None:
        raise BackendNotInstalledError(
            f"cannot read {uri}: no backend for {scheme}:// URIs is installed; "
            f"{install_hint(scheme, core_origin())}"
        )
    return plugin


def _options(module: ModuleType, credentials: Any, scheme: str) -> Mapping[str, str]:
    options = module.backend_options(credentials)
    if not isinstance(options, Mapping):
        raise BackendError(
            f"backend_options() of the {scheme}:// plugin returned "
            f"{type(options).__name__}, not a dict"
        )
    return {str(key): str(value) for key, value in options.items() if value is not None}


def register_backends(
    engine: Engine, paths: Iterable[str], credentials: S3Credentials | None = None
) -> None:
    """Registers with ``engine`` the backend of every URI scheme among ``paths``."""
    first_uri: dict[str, str] = {}
    for path in paths:
        scheme = uri_scheme(path)
        if scheme is not None:
            first_uri.setdefault(scheme, path)
    for scheme, uri in first_uri.items():
        plugin = find_backend(scheme, uri)
        module = plugin.load()
        engine.register_backend(
            scheme, plugin.library_path(module), _options(module, credentials, scheme)
        )


def resolve_uris(engine: Engine, paths: Sequence[str]) -> list[str]:
    """``paths`` with the URIs of each plugin that resolves them (``resolve_uris``) resolved;
    its backend is registered with ``engine`` already."""
    resolved = list(paths)
    by_scheme: dict[str, list[int]] = {}
    for index, path in enumerate(paths):
        scheme = uri_scheme(path)
        if scheme is not None:
            by_scheme.setdefault(scheme, []).append(index)
    for scheme, indexes in by_scheme.items():
        module = find_backend(scheme, paths[indexes[0]]).load()
        resolve = getattr(module, "resolve_uris", None)
        if resolve is None:
            continue
        result = list(resolve([paths[i] for i in indexes], engine.object_info))
        if len(result) != len(indexes) or not all(isinstance(uri, str) for uri in result):
            raise BackendError(f"resolve_uris() of the {scheme}:// plugin returned a wrong list")
        for index, uri in zip(indexes, result, strict=True):
            resolved[index] = uri
    return resolved


def after_cached(uri: str, checksum: tuple[str, str]) -> Callable[[Path], None] | None:
    """What to do once ``uri``'s cache entry is committed: call its plugin's ``on_cached``, if
    it has one. The plugin is looked up then, in the cache writer's thread: finding it may scan
    the installed entry points (milliseconds), which a stream's start should not wait for."""
    scheme = uri_scheme(uri)
    if scheme is None:
        return None

    def share(data: Path) -> None:
        hook = getattr(find_backend(scheme, uri).load(), "on_cached", None)
        if hook is not None:
            hook(uri, checksum, str(data))

    return share
