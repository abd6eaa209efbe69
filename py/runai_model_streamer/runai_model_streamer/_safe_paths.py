"""Where downloaded files may go: every object key (or local file) below a prefix maps to a
path under the destination directory, or the whole download is refused before anything is
written (:class:`~runai_model_streamer.UnsafeObjectKeyError`, naming the key and why); files
are written through new temporary files, never through what already exists at their name."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence

from runai_model_streamer._errors import UnsafeObjectKeyError


def unsafe_key(source: str, key: str, why: str) -> UnsafeObjectKeyError:
    return UnsafeObjectKeyError(
        f"{source}: refusing to download {key!r}: {why}; nothing was written"
    )


def check_relative(source: str, key: str, relative: str) -> str:
    """``relative`` (a key below the prefix ``source``) checked as a relative POSIX path; raises
    UnsafeObjectKeyError naming ``key`` and why it cannot be one."""
    if "\0" in relative:
        raise unsafe_key(source, key, "it contains a NUL character")
    if "\\" in relative:
        raise unsafe_key(source, key, "it contains a backslash (a path separator on Windows)")
    if relative.startswith("/"):
        raise unsafe_key(source, key, "the part after the prefix is an absolute path")
    for segment in relative.split("/"):
        if segment in ("", ".", ".."):
            shown = "an empty" if segment == "" else f"a {segment!r}"
            raise unsafe_key(source, key, f"it has {shown} path segment")
    return relative


def destinations_under(source: str, target: str, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The paths under ``target`` of ``(key, relative path)`` pairs, all checked before any is
    created: each must resolve (realpath: symbolic links inside ``target`` too) inside it, and
    no path may be both a file and a directory of another."""
    root = os.path.realpath(target)
    paths: list[str] = []
    files: set[str] = set()
    directories: set[str] = set()
    for key, relative in pairs:
        path = os.path.join(target, *relative.split("/"))
        resolved = os.path.realpath(path)
        if os.path.commonpath([root, resolved]) != root or resolved == root:
            raise unsafe_key(source, key, f"it resolves to {resolved}, outside {target}")
        parts = relative.split("/")
        files.add(relative)
        directories.update("/".join(parts[:i]) for i in range(1, len(parts)))
        paths.append(path)
    clash = sorted(files & directories)
    if clash:
        raise unsafe_key(source, clash[0], "it is both a file and a directory of others")
    return paths


def open_temporary(destination: str) -> tuple[int, str]:
    """A new file beside ``destination`` (O_EXCL, never through an existing link), with the
    permissions of an ordinary new file."""
    directory, name = os.path.split(destination)
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=directory)
    os.fchmod(handle, 0o666 & ~_umask())
    return handle, temporary


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def walk_local(source: str) -> list[tuple[str, str]]:
    """``(full path, relative path)`` of the files under ``source``, in name order. Symbolic
    links count as what they point to (a linked directory is descended) except a link to a
    directory the walk is already inside, which would loop; dangling links are skipped."""
    found: list[tuple[str, str]] = []

    def walk(directory: str, relative: str, inside: frozenset[str]) -> None:
        real = os.path.realpath(directory)
        if real in inside:
            return
        with os.scandir(directory) as iterator:
            entries = sorted(iterator, key=lambda e: e.name)
        for entry in entries:
            below = f"{relative}{entry.name}"
            if entry.is_dir():
                walk(entry.path, below + "/", inside | {real})
            elif entry.is_file():
                found.append((entry.path, below))

    walk(source, "", frozenset())
    return found
