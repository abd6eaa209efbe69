"""list_safetensors, pull_files, ObjectStorageModel and URIs through a backend plugin."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

import google_crc32c
import pytest
import torch
from runai_model_streamer import (
    BackendError,
    BackendNotInstalledError,
    FileChunks,
    FileStreamer,
    ObjectStorageModel,
    SafetensorsStreamer,
    UnsafeObjectKeyError,
    list_safetensors,
    pull_files,
)
from runai_model_streamer._backends import (
    PLUGIN_DISTRIBUTIONS,
    core_origin,
    find_backends,
    install_hint,
    uri_scheme,
)
from runai_model_streamer.s3_utils.s3_utils import S3Credentials
from safetensors.torch import load_file, save_file

from .helpers import assert_same

ROOT = Path(__file__).resolve().parents[2]


def _model_dir(directory: Path, shards: int = 3) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        tensors = {f"s{shard}.w{i}": torch.randn(32, 8 + i) for i in range(5)}
        save_file(tensors, str(directory / f"model-{shard:05d}-of-{shards:05d}.safetensors"))
    (directory / "config.json").write_text('{"model_type": "test"}')
    (directory / "tokenizer.json").write_text("{}")
    (directory / "sub").mkdir(exist_ok=True)
    (directory / "sub" / "nested.safetensors").write_bytes(b"not listed: not top level")
    return directory


def test_uri_scheme() -> None:
    assert uri_scheme("s3://bucket/key") == "s3"
    assert uri_scheme("GS://b/k") == "gs"
    assert uri_scheme("/local/path") is None
    assert uri_scheme("file:///local/path") is None
    assert uri_scheme("relative/dir") is None


def test_list_safetensors_local(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    listed = list_safetensors(str(model))
    assert listed == sorted(str(p) for p in model.glob("*.safetensors"))
    assert len(listed) == 3
    assert list_safetensors(tmp_path / "model") == listed
    with pytest.raises(FileNotFoundError) as raised:
        list_safetensors(str(tmp_path / "absent"))
    assert str(tmp_path / "absent") in str(raised.value)
    with pytest.raises(NotADirectoryError):
        list_safetensors(listed[0])


def test_pull_files_local_with_patterns(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    dst = tmp_path / "copy"
    pull_files(str(model), str(dst), ignore_pattern=["*.safetensors"])
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "tokenizer.json"]
    pull_files(str(model), str(dst), allow_pattern=["*.safetensors"], ignore_pattern=["sub/*"])
    assert len(list(dst.glob("*.safetensors"))) == 3
    assert not (dst / "sub").exists()
    for path in model.glob("*.safetensors"):
        assert (dst / path.name).read_bytes() == path.read_bytes()
    pull_files(str(model), str(dst))
    assert (dst / "sub" / "nested.safetensors").is_file()
    with pytest.raises(FileNotFoundError):
        pull_files(str(tmp_path / "absent"), str(dst))


def test_missing_plugin_names_the_distribution_to_install(tmp_path: Path) -> None:
    installed = find_backends()
    scheme = next((s for s in PLUGIN_DISTRIBUTIONS if s not in installed), None)
    uri = f"{scheme or 'nosuchscheme'}://bucket/model.safetensors"
    with SafetensorsStreamer() as streamer, pytest.raises(BackendNotInstalledError) as raised:
        streamer.stream_file(uri, s3_credentials=S3Credentials(region_name="x"))
    message = str(raised.value)
    assert uri in message
    if scheme is not None:
        assert PLUGIN_DISTRIBUTIONS[scheme][0] in message
    else:
        assert "runai_model_streamer.backends" in message
    with pytest.raises(ImportError):
        list_safetensors("nosuchscheme://bucket/")


@pytest.fixture
def entry_point_scans(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each scan of the installed entry points from now on, none made yet by the process."""
    from runai_model_streamer import _backends

    monkeypatch.setattr(_backends, "_installed", None)
    monkeypatch.setattr(_backends, "_own", {})
    scans: list[object] = []
    scan = importlib.metadata.entry_points

    def counted(**selection: str) -> object:
        scans.append(selection)
        return scan(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", counted)
    return scans


def _dist_info(where: Path, name: str, entry_points: str) -> None:
    info = where / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[runai_model_streamer.backends]\n{entry_points}")


def test_the_installed_plugins_are_scanned_once_and_again_for_a_scheme_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry_point_scans: list[object]
) -> None:
    from runai_model_streamer import _backends

    scans = entry_point_scans
    assert find_backends() == find_backends()
    assert len(scans) == 1  # a stream looks its plugins up several times: scanned once
    # a plugin installed since is found: a scheme not found scans again
    _dist_info(tmp_path, "late_plugin", "latefs = late_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _backends.find_backend("latefs", "latefs://b/k").module_name == "late_plugin"
    assert len(scans) == 2


def test_a_scheme_of_its_own_distribution_is_found_without_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry_point_scans: list[object]
) -> None:
    from runai_model_streamer import _backends

    # another distribution, earlier on sys.path, that also declares s3
    _dist_info(tmp_path, "impostor", "s3 = impostor\nimpfs = impostor\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scans = entry_point_scans
    plugin = _backends.find_backend("s3", "s3://b/k")
    assert not scans  # one distribution looked up by name, not every one's entry points
    assert plugin.module_name == "runai_model_streamer_s3"
    assert plugin.distribution is not None
    assert plugin.distribution.startswith("runai-model-streamer-s3 ")
    # the scan agrees, and still finds what only the other distribution declares
    installed = find_backends()
    assert installed["s3"].module_name == "runai_model_streamer_s3"
    assert installed["impfs"].module_name == "impostor"
    assert len(scans) == 1


BROKEN_PLUGINS = {
    "fails to import": ("raise RuntimeError('no such driver')", "failed to import: RuntimeError"),
    "lacks a function": ("def library_path():\n    return '/x.so'\n", "has no backend_options()"),
    "names a relative library": (
        "def library_path():\n    return 'libbroken.so'\n"
        "def backend_options(credentials=None):\n    return {}\n",
        "relative library path 'libbroken.so'; it must be absolute",
    ),
}


@pytest.mark.parametrize("broken", sorted(BROKEN_PLUGINS))
def test_a_broken_plugin_is_named_with_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry_point_scans: list[object], broken: str
) -> None:
    """A plugin that fails to import, lacks one of its two functions or names its library by a
    relative path (which the loader would look for wherever the process happens to be): the
    stream raises BackendError naming the scheme, the plugin's module and the fault."""
    source, fault = BROKEN_PLUGINS[broken]
    (tmp_path / "broken_plugin.py").write_text(source)
    _dist_info(tmp_path, "broken_plugin", "brokenfs = broken_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_plugin", raising=False)
    with SafetensorsStreamer() as streamer, pytest.raises(BackendError) as raised:
        streamer.stream_file("brokenfs://bucket/model.safetensors")
    message = str(raised.value)
    assert "the backend plugin for brokenfs:// (broken_plugin)" in message
    assert fault in message


def test_the_install_hint_never_replaces_a_core_that_came_from_elsewhere(tmp_path: Path) -> None:
    version = importlib.metadata.version("runai-model-streamer")
    from_index = install_hint("s3", None)
    assert from_index == (
        f'install runai-model-streamer-s3: pip install "runai-model-streamer[s3]=={version}"'
    )
    checkout = tmp_path / "my checkout"
    (checkout / "py" / "runai_model_streamer_gcs").mkdir(parents=True)
    url = "file://" + urllib.parse.quote(str(checkout))
    from_checkout = install_hint("gs", {"url": url, "dir_info": {"editable": True}})
    assert from_checkout == (
        "install runai-model-streamer-gcs from the checkout this core was installed from: "
        f"pip install '{checkout}/py/runai_model_streamer_gcs'"
    )
    from_wheel = install_hint("az", {"url": "file:///w/x.whl", "archive_info": {}})
    assert "same source as this core (file:///w/x.whl)" in from_wheel
    assert "pip install" not in from_wheel
    # this test environment: the core is an editable install of this checkout
    origin = core_origin()
    assert origin is not None and "dir_info" in origin
    assert f"pip install {ROOT}/py/runai_model_streamer_s3" in install_hint("s3", origin)


def test_stream_uris_through_the_testfs_plugin(testfs_root: Path) -> None:
    model = _model_dir(testfs_root / "models" / "m1")
    listed = list_safetensors("testfs://models/m1")
    assert listed == [f"testfs://models/m1/{p.name}" for p in sorted(model.glob("*.safetensors"))]
    expected: dict[str, torch.Tensor] = {}
    for path in sorted(model.glob("*.safetensors")):
        expected.update(load_file(str(path)))
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(listed)
        assert sum(len(m) for m in streamer.files_to_tensors_metadata.values()) == 15
        got = dict(streamer.get_tensors())
    for name in expected:
        assert_same(got[name], expected[name], name)
    with FileStreamer() as streamer:
        streamer.stream_files([FileChunks(1, listed[0], [0, 8], [8, 16])])
        chunks = {index: bytes(t.numpy()) for _, index, t in streamer.get_chunks()}
    raw = (model / Path(listed[0]).name).read_bytes()
    assert chunks == {0: raw[:8], 1: raw[8:24]}


def test_missing_object_is_file_not_found(testfs_root: Path) -> None:
    with SafetensorsStreamer() as streamer, pytest.raises(FileNotFoundError) as raised:
        streamer.stream_file("testfs://nothing/here.safetensors")
    assert "testfs://nothing/here.safetensors" in str(raised.value)


def test_bad_header_over_a_backend_names_the_uri(testfs_root: Path) -> None:
    (testfs_root / "bad.safetensors").write_bytes((10**6).to_bytes(8, "little") + b"{}")
    with SafetensorsStreamer() as streamer, pytest.raises(ValueError) as raised:
        streamer.stream_file("testfs://bad.safetensors")
    assert "testfs://bad.safetensors" in str(raised.value)


def test_large_header_needs_a_second_read(testfs_root: Path) -> None:
    # a header bigger than the first read of each object (256 KiB)
    tensors = {f"tensor.with.a.rather.long.name.{i:06d}": torch.tensor([i]) for i in range(5000)}
    save_file(tensors, str(testfs_root / "wide.safetensors"))
    with SafetensorsStreamer() as streamer:
        streamer.stream_file("testfs://wide.safetensors")
        got = dict(streamer.get_tensors())
    assert len(got) == 5000 and int(got["tensor.with.a.rather.long.name.004321"]) == 4321


def test_tensors_within_an_objects_first_read_are_not_read_again(
    testfs_root: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An object's first read (256 KiB, for its header) holds its first tensors: they are
    copied from it and yielded first, verified with the rest; the store serves the others."""
    tensors = {f"t{i}": torch.full((16, 1024), float(i)) for i in range(8)}  # 64 KiB each
    path = testfs_root / "model.safetensors"
    save_file(tensors, str(path))
    raw = path.read_bytes()
    path.with_name(path.name + ".checksums").write_text(f"crc32c={google_crc32c.value(raw):08x}")
    data_start = 8 + int.from_bytes(raw[:8], "little")
    within = (256 << 10) - data_start  # t0..t2 lie within the first read, t3 does not
    assert 3 * (64 << 10) <= within < 4 * (64 << 10)
    logs = caplog.at_level(logging.INFO, logger="runai_model_streamer")
    with logs, SafetensorsStreamer() as streamer:
        streamer.stream_file("testfs://model.safetensors")
        got = list(streamer.get_tensors())
    assert [name for name, _ in got[:3]] == ["t0", "t1", "t2"]
    assert sorted(name for name, _ in got) == sorted(tensors)
    for name, tensor in got:
        assert_same(tensor, tensors[name], name)
    assert "verified crc32c of 1 object" in caplog.text
    served = [tuple(int(n) for n in line.split()[:2]) for line in reads.read_text().splitlines()]
    assert served[0] == (0, 256 << 10), served  # the header's read
    assert all(offset >= data_start + 3 * (64 << 10) for offset, _ in served[1:]), served
    assert sum(size for _, size in served[1:]) == len(raw) - data_start - 3 * (64 << 10)


def test_tensors_within_an_objects_first_read_span_windows_and_reused_buffers(
    testfs_root: Path, reads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a memory limit smaller than the first read, its tensors fill several windows (each
    copied from it, in buffers reused with owned=False), and the store serves the rest only."""
    tensors = {f"t{i}": torch.full((4, 1024), float(i)) for i in range(8)}  # 16 KiB each
    tensors["z"] = torch.arange(128 * 1024, dtype=torch.float32)  # 512 KiB, past the first read
    path = testfs_root / "model.safetensors"
    save_file(tensors, str(path))
    raw = path.read_bytes()
    data_start = 8 + int.from_bytes(raw[:8], "little")
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", str(40 << 10))  # two small tensors a window
    with SafetensorsStreamer() as streamer:
        streamer.stream_file("testfs://model.safetensors", owned=False)
        got = {name: tensor.clone() for name, tensor in streamer.get_tensors()}
    assert sorted(got) == sorted(tensors)
    for name, tensor in tensors.items():
        assert_same(got[name], tensor, name)
    served = [tuple(int(n) for n in line.split()[:2]) for line in reads.read_text().splitlines()]
    assert served[0] == (0, 256 << 10), served
    assert sum(size for _, size in served[1:]) == len(raw) - data_start - 8 * (16 << 10), served


def test_pull_files_from_a_uri(testfs_root: Path, tmp_path: Path) -> None:
    model = _model_dir(testfs_root / "m2")
    dst = tmp_path / "pulled"
    pull_files("testfs://m2", str(dst), allow_pattern=["*.safetensors", "*.json"])
    names = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert names == sorted(  # recursive, as upstream: the nested file comes too
        [p.name for p in model.glob("*.safetensors")]
        + ["config.json", "tokenizer.json", "sub/nested.safetensors"]
    )
    for name in names:
        assert (dst / name).read_bytes() == (model / name).read_bytes()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from runai_model_streamer import ObjectStorageModel
    with ObjectStorageModel(model_path=sys.argv[1], dst=sys.argv[2]) as model:
        downloaded = not model.skip
        model.pull_files(allow_pattern=["*.safetensors"])
        model.pull_files(ignore_pattern=["*.safetensors"])
        time.sleep(0.2)
    print("DOWNLOADED" if downloaded else "SKIPPED")
    """
)


def test_object_storage_model_downloads_once_across_processes(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "source")
    dst = tmp_path / "cache" / "model"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(model), str(dst)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    verdicts = sorted(out.strip() for out, _ in outputs)
    assert verdicts == ["DOWNLOADED", "SKIPPED", "SKIPPED", "SKIPPED"], outputs
    assert (dst / ObjectStorageModel.SENTINEL_NAME).is_file()
    assert (dst / "config.json").is_file() and len(list(dst.glob("*.safetensors"))) == 3
    with ObjectStorageModel(str(model), str(dst)) as again:
        assert again.skip and again.dir == str(dst)


def test_object_storage_model_retries_after_a_failure(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "source")
    dst = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="boom"), ObjectStorageModel(str(model), str(dst)) as m:
        m.pull_files(allow_pattern=["config.json"])
        raise RuntimeError("boom")
    assert not (dst / ObjectStorageModel.SENTINEL_NAME).exists()
    with ObjectStorageModel(str(model), str(dst)) as m:
        assert not m.skip
        m.pull_files()
    assert (dst / ObjectStorageModel.SENTINEL_NAME).exists()
    with (
        pytest.raises(RuntimeError, match="no files were pulled"),
        ObjectStorageModel(str(model), str(tmp_path / "empty")) as m,
    ):
        m.pull_files(allow_pattern=["*.bin"])
    assert os.path.exists(str(tmp_path / "empty") + ".lock")


def test_local_pull_copies_linked_files_as_content_and_never_writes_outside(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside content")
    source = tmp_path / "source"
    (source / "real").mkdir(parents=True)
    (source / "real" / "w.bin").write_bytes(b"weights")
    (source / "linked.txt").symlink_to(outside / "secret.txt")  # a file link: its content
    (source / "linked_dir").symlink_to(source / "real")  # a directory link: descended
    (source / "loop").symlink_to(source)  # a link back up: not followed again
    (source / "dangling").symlink_to(tmp_path / "nowhere")
    dst = tmp_path / "dst"
    pull_files(source, dst)
    copied = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())
    assert copied == ["linked.txt", "linked_dir/w.bin", "real/w.bin"]
    assert not any(p.is_symlink() for p in dst.rglob("*"))
    assert (dst / "linked.txt").read_text() == "outside content"
    # a link inside the destination that leads out is refused before anything is written
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    dst2 = tmp_path / "dst2"
    dst2.mkdir()
    (dst2 / "real").symlink_to(victim_dir)
    with pytest.raises(UnsafeObjectKeyError) as raised:
        pull_files(source, dst2)
    assert "real/w.bin" in str(raised.value) and str(victim_dir) in str(raised.value)
    assert list(victim_dir.iterdir()) == [] and sorted(os.listdir(dst2)) == ["real"]


@pytest.mark.parametrize(
    "relative, why",
    [
        ("/abs", "absolute path"),
        ("a/../b", "'..' path segment"),
        ("./b", "'.' path segment"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("a\\b", "backslash"),
        ("a\0b", "NUL"),
    ],
)
def test_key_paths_that_are_not_plain_relative_paths_are_refused(relative: str, why: str) -> None:
    from runai_model_streamer._safe_paths import check_relative

    with pytest.raises(UnsafeObjectKeyError) as raised:
        check_relative("s3://b/p/", "s3://b/p/" + relative, relative)
    assert why in str(raised.value) and "s3://b/p/" in str(raised.value)
    assert check_relative("s3://b/p/", "k", "a/b.c/..d/e..") == "a/b.c/..d/e.."
