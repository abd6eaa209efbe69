"""The ``runai-model-streamer`` command (also ``python -m runai_model_streamer``).

Commands: ``sample`` (write a generated model), ``stream`` (load files/URIs, print throughput,
optionally verify every tensor against the safetensors package), ``pull`` (download a model
with a progress bar), ``bench`` (compare loaders on a generated model), ``info`` (versions,
library paths, backends, platform).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

from runai_model_streamer._settings import parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} TiB"  # pragma: no cover


class Progress:
    """A one-line progress bar on a terminal (nothing when the stream is not a TTY)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, enabled: bool | None = None):
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, count: int | None = None, force: bool = False) -> None:
        """``done`` bytes of ``total``; ``count``: tensors so far (None: not shown)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        width = 30
        filled = int(width * done / self.total)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {_human(done)} / {_human(self.total)}"
            f"  {done / elapsed / 1e9:.2f} GB/s" + ("" if count is None else f"  {count} tensors")
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _expand(paths: Sequence[str]) -> list[str]:
    """Files to stream: a directory (or an object-storage prefix, with or without its trailing
    slash) stands for the ``*.safetensors`` files directly in it."""
    from runai_model_streamer._backends import uri_scheme
    from runai_model_streamer.storage import SAFETENSORS_SUFFIX, list_safetensors

    files: list[str] = []
    for path in paths:
        remote = uri_scheme(path) is not None
        if remote and not path.endswith(("/", SAFETENSORS_SUFFIX)):
            found = list_safetensors(path)  # a prefix? else the object the URI names
            files.extend(found or [path])
        elif path.endswith("/") or (not remote and os.path.isdir(path)):
            found = list_safetensors(path)
            if not found:
                raise FileNotFoundError(f"{path}: no *.safetensors files in this directory")
            files.extend(found)
        else:
            files.append(path)
    return files


def _check_verify_possible() -> None:
    import importlib.util

    if importlib.util.find_spec("safetensors") is None:
        raise SystemExit(
            "runai-model-streamer stream: --verify compares with the safetensors package, which "
            "is not installed: pip install safetensors"
        )


def _verify(
    files: Sequence[str],
    tensors: dict[tuple[int, str], Any],
    copies: Sequence[str] | None = None,
) -> list[str]:
    """Problems of the streamed ``tensors`` against what safetensors reads from each file (from
    ``copies`` where given: local files with the same bytes, in the same order)."""
    import torch
    from safetensors import safe_open

    problems: list[str] = []
    for index, (path, copy) in enumerate(zip(files, copies or files, strict=True)):
        with safe_open(copy, framework="pt") as reference:
            names = list(reference.keys())
            for name in names:
                expected = reference.get_tensor(name)
                got = tensors.get((index, name))
                if got is None:
                    problems.append(f"{path}: tensor {name!r} was not streamed")
                    continue
                got = got.cpu()
                if got.dtype != expected.dtype or got.shape != expected.shape:
                    problems.append(
                        f"{path}: {name!r} is {got.dtype}{list(got.shape)}, "
                        f"expected {expected.dtype}{list(expected.shape)}"
                    )
                elif expected.numel() and not torch.equal(
                    got.reshape(-1).view(torch.uint8), expected.reshape(-1).view(torch.uint8)
                ):
                    problems.append(f"{path}: {name!r} differs from the safetensors package")
            extra = {n for (i, n) in tensors if i == index} - set(names)
            problems.extend(f"{path}: unexpected tensor {n!r}" for n in sorted(extra))
    return problems


def cmd_stream(args: argparse.Namespace) -> int:
    if args.concurrency is not None:
        os.environ["RUNAI_STREAMER_CONCURRENCY"] = str(args.concurrency)
    if args.chunk_bytesize is not None:
        os.environ["RUNAI_STREAMER_CHUNK_BYTESIZE"] = str(args.chunk_bytesize)
    if args.memory_limit is not None:
        os.environ["RUNAI_STREAMER_MEMORY_LIMIT"] = str(args.memory_limit)
    from runai_model_streamer._safetensors_streamer import SafetensorsStreamer

    if args.verify:
        _check_verify_possible()
    files = _expand(args.paths)
    keep = args.verify
    kept: dict[tuple[int, str], Any] = {}
    start = time.perf_counter()
    count = 0
    done = 0
    with SafetensorsStreamer(cache_dir=args.cache_dir) as streamer:
        streamer.stream_files(files, device=args.device, owned=not args.not_owned)
        total = streamer.total_size
        progress = Progress(total, enabled=False if args.quiet else None)
        names = {
            (index, meta.name): index
            for index, metas in streamer.files_to_tensors_metadata.items()
            for meta in metas
        }
        file_of_name: dict[str, list[int]] = {}
        for index, name in names:
            file_of_name.setdefault(name, []).append(index)
        for name, tensor in streamer.get_tensors():
            count += 1
            done += tensor.numel() * tensor.element_size()
            if keep:
                for index in file_of_name[name]:
                    if (index, name) not in kept:
                        # not owned: the buffer is reused later, keep a copy
                        kept[(index, name)] = tensor if not args.not_owned else tensor.clone()
                        break
            progress.update(done, count)
        progress.update(done, count, force=True)
        progress.finish()
    elapsed = max(time.perf_counter() - start, 1e-9)
    print(
        f"streamed {count} tensors, {_human(total)} from {len(files)} file(s) in {elapsed:.3f} s: "
        f"{total / elapsed / 1e9:.2f} GB/s, {count / elapsed:.0f} tensors/s"
    )
    if args.verify:
        problems = _verify_against_copies(files, kept)
        if problems:
            for problem in problems:
                print(f"MISMATCH {problem}", file=sys.stderr)
            print(f"verify: {len(problems)} problem(s)", file=sys.stderr)
            return 1
        print(f"verify: all {count} tensors equal the safetensors package's, bit for bit")
    return 0


def _verify_against_copies(files: Sequence[str], kept: dict[tuple[int, str], Any]) -> list[str]:
    """:func:`_verify`, with each object-storage file first downloaded whole (plain ranged
    reads, none of the stream's planning) into a temporary directory for safetensors to read."""
    from runai_model_streamer._backends import uri_scheme
    from runai_model_streamer._download import download_objects

    remote = [f for f in files if uri_scheme(f) is not None]
    with tempfile.TemporaryDirectory(prefix="runai-verify-") as directory:
        local = dict(zip(remote, download_objects(remote, directory), strict=True))
        return _verify(files, kept, [local.get(f, f) for f in files])


def cmd_pull(args: argparse.Namespace) -> int:
    from runai_model_streamer.storage import pull_files

    progress = Progress(0, enabled=False if args.quiet else None)
    start = time.perf_counter()
    written = 0

    def report(done: int, total: int) -> None:
        nonlocal written
        progress.total, written = max(total, 1), done
        progress.update(done)

    pull_files(
        args.uri, args.dir, args.allow, args.ignore, progress=report, cache_dir=args.cache_dir
    )
    progress.update(written, force=True)
    progress.finish()
    elapsed = max(time.perf_counter() - start, 1e-9)
    print(
        f"pulled {_human(written)} from {args.uri} into {args.dir} in {elapsed:.2f} s: "
        f"{written / elapsed / 1e9:.2f} GB/s"
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from runai_model_streamer._sample import plan_model, write_sample

    start = time.perf_counter()
    paths = write_sample(args.path, args.size, shards=args.shards, seed=args.seed)
    size = sum(os.path.getsize(p) for p in paths)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {len(plan_model(args.size))} tensors, {_human(size)} to "
        f"{args.path if args.shards > 1 else paths[0]}"
        f"{f' ({len(paths)} shards)' if args.shards > 1 else ''} in {elapsed:.2f} s"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from runai_model_streamer._bench import (
        can_drop_caches,
        default_loaders,
        format_table,
        run_benchmark,
    )
    from runai_model_streamer._sample import write_sample

    if args.cold and not can_drop_caches():
        print("bench --cold needs root (it writes /proc/sys/vm/drop_caches)", file=sys.stderr)
        return 2
    loaders = default_loaders()
    if args.loaders:
        wanted = set(args.loaders.split(","))
        loaders = [lo for lo in loaders if lo.kind in wanted or lo.label in wanted]
    with tempfile.TemporaryDirectory(prefix="runai-bench-", dir=args.dir) as directory:
        target = os.path.join(directory, "model" if args.shards > 1 else "model.safetensors")
        files = write_sample(target, args.size, shards=args.shards)
        size = sum(os.path.getsize(f) for f in files)
        print(
            f"model: {_human(size)} in {len(files)} file(s); loaders: "
            + ", ".join(lo.label for lo in loaders)
            + f"; {args.rounds} rounds, {'cold' if args.cold else 'warm'} cache"
        )
        results = run_benchmark(
            loaders,
            files,
            rounds=args.rounds,
            cold=args.cold,
            warm=not args.cold,
            progress=None if args.quiet else print,
        )
    print(format_table(results, model_bytes=size))
    return 0 if all(r.seconds for r in results) else 1


def info_lines() -> list[str]:
    import importlib.metadata
    import json

    from runai_model_streamer import __version__
    from runai_model_streamer._backends import find_backends
    from runai_model_streamer._errors import StreamerLibraryError
    from runai_model_streamer._library import (
        LIBRARY_ENV_VAR,
        candidate_paths,
        library,
        package_directories,
    )

    lines = [
        f"runai-model-streamer {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"platform {platform.system()} {platform.machine()} ({platform.platform()})",
        "package directory " + ", ".join(str(d) for d in package_directories()),
    ]
    try:
        import torch

        lines.append(f"torch {torch.__version__}")
    except ImportError:
        lines.append("torch: not installed")
    if os.environ.get(LIBRARY_ENV_VAR):
        lines.append(f"{LIBRARY_ENV_VAR}={os.environ[LIBRARY_ENV_VAR]}")
    lines.append("library candidates: " + ", ".join(str(p) for p in candidate_paths()))
    status = 0
    try:
        lib = library()
        lines.append(f"libstreamer {lib.version} (API {lib.api_version}) loaded from {lib.path}")
    except StreamerLibraryError as error:
        lines.append(f"libstreamer: NOT LOADED: {error}")
        status = 1
    build_info = next(
        (
            d / "_build_info.json"
            for d in package_directories()
            if (d / "_build_info.json").is_file()
        ),
        None,
    )
    if build_info is not None:
        try:
            data = json.loads(build_info.read_text())
            lines.append("build: " + ", ".join(f"{k}={v}" for k, v in sorted(data.items())))
        except ValueError:
            lines.append(f"build: unreadable {build_info}")
    else:
        lines.append("build mode: unknown (no _build_info.json in the package)")
    backends = find_backends()
    if not backends:
        lines.append("backends: none installed (local files only)")
    for scheme, plugin in sorted(backends.items()):
        try:
            where = plugin.library_path()
            state = "ok" if os.path.isfile(where) else "MISSING"
            lines.append(f"backend {scheme}:// {plugin.distribution} -> {where} ({state})")
        except Exception as error:
            lines.append(f"backend {scheme}:// {plugin.module_name}: BROKEN: {error}")
    try:
        importlib.metadata.version("safetensors")
        lines.append(f"safetensors {importlib.metadata.version('safetensors')} (for --verify)")
    except importlib.metadata.PackageNotFoundError:
        lines.append("safetensors: not installed (stream --verify needs it)")
    lines.append(f"status {'ok' if status == 0 else 'library missing'}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    lines = info_lines()
    print("\n".join(lines))
    return 0 if lines[-1] == "status ok" else 1


def cmd_cache(args: argparse.Namespace) -> int:
    from runai_model_streamer._cache import cache_command

    print("\n".join(cache_command(args.action, args.cache_dir, args.max_bytes)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runai-model-streamer",
        description="Stream safetensors model weights into torch tensors with concurrent reads.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    stream = commands.add_parser("stream", help="stream files, directories or URIs")
    stream.add_argument("paths", nargs="+", help="safetensors files, directories, or URIs")
    stream.add_argument(
        "--verify",
        action="store_true",
        help="compare every tensor with the safetensors package's (URIs: of a downloaded copy)",
    )
    stream.add_argument("--device", default="cpu")
    stream.add_argument("--memory-limit", type=_size, help="bytes in flight (-1: unlimited)")
    stream.add_argument("--concurrency", type=int, help="reader threads")
    stream.add_argument("--chunk-bytesize", type=_size, help="bytes per read")
    stream.add_argument("--not-owned", action="store_true", help="reuse buffers (owned=False)")
    stream.add_argument("--quiet", action="store_true", help="no progress bar")
    stream.add_argument("--cache-dir", help="cache of objects (default: $RUNAI_STREAMER_CACHE_DIR)")
    stream.set_defaults(handler=cmd_stream)

    cache = commands.add_parser("cache", help="see and clean the local cache of objects")
    cache.add_argument("action", choices=["ls", "du", "prune"])
    cache.add_argument("--cache-dir", help="default: $RUNAI_STREAMER_CACHE_DIR")
    prune_help = "prune: down to this (default: $RUNAI_STREAMER_CACHE_MAX_BYTES; 0 empties it)"
    cache.add_argument("--max-bytes", type=_size, help=prune_help)
    cache.set_defaults(handler=cmd_cache)

    pull = commands.add_parser("pull", help="download a model directory or URI prefix")
    pull.add_argument("uri", help="object-storage URI prefix (or a local directory)")
    pull.add_argument("dir", help="destination directory")
    pull.add_argument("--allow", action="append", help="only files matching this glob (repeat)")
    pull.add_argument("--ignore", action="append", help="skip files matching this glob (repeat)")
    pull.add_argument("--quiet", action="store_true", help="no progress bar")
    pull.add_argument("--cache-dir", help="cache of objects (default: $RUNAI_STREAMER_CACHE_DIR)")
    pull.set_defaults(handler=cmd_pull)

    sample = commands.add_parser("sample", help="write a generated safetensors model")
    sample.add_argument("path", help="output file (a directory with --shards > 1)")
    sample.add_argument("--size", type=_size, default=parse_size("256MB"), help="e.g. 256MB, 2GB")
    sample.add_argument("--shards", type=int, default=1)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(handler=cmd_sample)

    bench = commands.add_parser("bench", help="compare loaders on a generated model")
    bench.add_argument("--size", type=_size, default=parse_size("512MB"))
    bench.add_argument("--shards", type=int, default=1)
    bench.add_argument("--rounds", type=int, default=3)
    bench.add_argument(
        "--cold",
        action="store_true",
        help="drop the page cache before each run (default: read the files whole before each run)",
    )
    bench.add_argument("--loaders", help="comma-separated loader kinds (default: all installed)")
    bench.add_argument("--dir", help="directory for the temporary model (default: $TMPDIR)")
    bench.add_argument("--quiet", action="store_true")
    bench.set_defaults(handler=cmd_bench)

    info = commands.add_parser("info", help="versions, library paths, backends, platform")
    info.set_defaults(handler=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from runai_model_streamer._errors import RunaiStreamerError

    try:
        return int(args.handler(args))
    except (RunaiStreamerError, OSError, ValueError, KeyError) as error:
        print(f"runai-model-streamer {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
