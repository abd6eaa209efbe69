"""Code written against upstream runai-model-streamer: its module paths, helpers and forms."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import runai_model_streamer
import torch
from safetensors.torch import load_file, save_file

from .helpers import assert_same

#: upstream module path -> names it exports that must be this package's top-level objects
UPSTREAM_PATHS = {
    "runai_model_streamer.safetensors_streamer": [
        "SafetensorsStreamer",
        "list_safetensors",
        "pull_files",
        "ObjectStorageModel",
    ],
    "runai_model_streamer.safetensors_streamer.safetensors_streamer": [
        "SafetensorsStreamer",
        "list_safetensors",
        "pull_files",
        "ObjectStorageModel",
    ],
    "runai_model_streamer.file_streamer": ["FileStreamer", "FileChunks"],
    "runai_model_streamer.file_streamer.file_streamer": ["FileStreamer"],
    "runai_model_streamer.file_streamer.requests_iterator": ["FileChunks"],
    "runai_model_streamer.distributed_streamer": ["DistributedStreamer"],
    "runai_model_streamer.distributed_streamer.distributed_streamer": ["DistributedStreamer"],
    "runai_model_streamer.s3_utils.s3_utils": ["S3Credentials"],
}


@pytest.mark.parametrize("module_name", sorted(UPSTREAM_PATHS))
def test_upstream_module_paths_are_the_same_objects(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in UPSTREAM_PATHS[module_name]:
        assert getattr(module, name) is getattr(runai_model_streamer, name), (module_name, name)


def test_upstream_helpers_exist_with_upstream_signatures() -> None:
    import inspect

    from runai_model_streamer.file_streamer import requests_iterator
    from runai_model_streamer.s3_utils import s3_utils

    assert requests_iterator.RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME == (
        "RUNAI_STREAMER_MEMORY_LIMIT"
    )
    expected = {
        "s3_glob": ["path", "allow_pattern", "s3_credentials"],
        "s3_pull_files": ["model_path", "dst", "allow_pattern", "ignore_pattern", "s3_credentials"],
        "gcs_glob": ["path", "allow_pattern"],
        "gcs_pull_files": [
            "model_path",
            "dst",
            "allow_pattern",
            "ignore_pattern",
            "s3_credentials",
        ],
        "azure_glob": ["path", "allow_pattern"],
        "azure_pull_files": ["model_path", "dst", "allow_pattern", "ignore_pattern"],
        "filter_allow": ["paths", "patterns"],
        "filter_ignore": ["paths", "patterns"],
        "removeprefix": ["s", "prefix"],
        "is_s3_path": ["path"],
        "is_gs_path": ["path"],
        "is_azure_path": ["path"],
    }
    for name, parameters in expected.items():
        signature = inspect.signature(getattr(s3_utils, name))
        assert list(signature.parameters) == parameters, name


def test_filters_and_prefix_helpers() -> None:
    from runai_model_streamer.s3_utils.s3_utils import filter_allow, filter_ignore, removeprefix

    paths = ["m/a.safetensors", "m/b.json", "m/sub/", "m/c.safetensors"]
    assert filter_allow(paths, ["*.safetensors"]) == ["m/a.safetensors", "m/c.safetensors"]
    assert filter_ignore(paths, ["*/", "*.json"]) == ["m/a.safetensors", "m/c.safetensors"]
    assert removeprefix("s3://b/k", "s3://b/") == "k"
    assert removeprefix("s3://b/k", "gs://") == "s3://b/k"


@pytest.mark.parametrize(
    ("function", "arguments", "distribution"),
    [
        ("s3_glob", ("s3://bucket/model",), "runai-model-streamer-s3"),
        ("gcs_glob", ("gs://bucket/model",), "runai-model-streamer-gcs"),
        ("azure_glob", ("az://container/model",), "runai-model-streamer-azure"),
        ("s3_pull_files", ("s3://bucket/model", "DST"), "runai-model-streamer-s3"),
        ("gcs_pull_files", ("gs://bucket/model", "DST"), "runai-model-streamer-gcs"),
        ("azure_pull_files", ("az://container/model", "DST"), "runai-model-streamer-azure"),
    ],
)
def test_object_storage_helpers_without_their_plugin_say_what_to_install(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    function: str,
    arguments: tuple[str, ...],
    distribution: str,
) -> None:
    from runai_model_streamer import _backends
    from runai_model_streamer.s3_utils import s3_utils

    # as if no plugin were installed
    monkeypatch.setattr(_backends, "find_backends", lambda rescan=False: {})
    monkeypatch.setattr(_backends, "_plugin_of_distribution", lambda scheme: None)
    arguments = tuple(str(tmp_path / "dst") if a == "DST" else a for a in arguments)
    with pytest.raises(ImportError, match=f"install {distribution}") as raised:
        getattr(s3_utils, function)(*arguments)
    assert arguments[0] in str(raised.value)


def test_object_storage_helpers_refuse_another_scheme() -> None:
    from runai_model_streamer.s3_utils.s3_utils import gcs_glob, s3_glob

    with pytest.raises(ValueError, match="s3_glob\\(\\) takes a s3:// URI"):
        s3_glob("gs://bucket/model")
    with pytest.raises(ValueError, match="gs:// URI"):
        gcs_glob("/local/dir")


def test_glob_lists_keys_through_the_plugin(testfs_root: Path) -> None:
    from runai_model_streamer._upstream_helpers import _glob

    (testfs_root / "model").mkdir()
    for name in ("a.safetensors", "b.safetensors", "config.json"):
        (testfs_root / "model" / name).write_bytes(b"x")
    found = _glob("testfs://", "testfs_glob", "testfs://model", ["*.safetensors"], None)
    assert sorted(found) == ["testfs://model/a.safetensors", "testfs://model/b.safetensors"]
    everything = _glob("testfs://", "testfs_glob", "testfs://model/", None, None)
    assert len(everything) == 3


def _model(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(2):
        path = directory / f"model-{shard}.safetensors"
        save_file({f"s{shard}.w": torch.randn(7, 5), f"s{shard}.b": torch.arange(3)}, str(path))
        paths.append(path)
    (directory / "config.json").write_text("{}")
    (directory / "sub").mkdir(exist_ok=True)
    (directory / "sub" / "tokenizer.json").write_text("{}")
    return paths


def test_streamer_patcher_serves_uris_from_a_local_directory(tmp_path: Path) -> None:
    from runai_model_streamer.safetensors_streamer.streamer_mock import StreamerPatcher

    local = _model(tmp_path / "bucket" / "models" / "m")
    patcher = StreamerPatcher(str(tmp_path / "bucket"))
    assert patcher.convert_remote_path_to_local_path("s3://any/models/m/x") == str(
        tmp_path / "bucket" / "models" / "m" / "x"
    )
    assert patcher.convert_remote_path_to_local_path("/already/local") == "/already/local"
    assert patcher.is_remote_path("gs://b/k") and not patcher.is_remote_path("/tmp/x")

    uris = patcher.shim_list_safetensors("s3://bucket/models/m")
    assert uris == [
        "s3://bucket/models/m/model-0.safetensors",
        "s3://bucket/models/m/model-1.safetensors",
    ]

    streamer = patcher.create_mock_streamer()
    with streamer:
        streamer.stream_files(uris, None, "cpu", True)
        got = dict(streamer.get_tensors())
        assert len(streamer.files_to_tensors_metadata) == 2
        assert streamer.total_size > 0
        streamer.stream_file("gs://other/models/m/model-0.safetensors", tensor_names=["s0.b"])
        assert [n for n, _ in streamer.get_tensors()] == ["s0.b"]
    expected = {**load_file(str(local[0])), **load_file(str(local[1]))}
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert_same(got[name], tensor, name)

    dst = tmp_path / "pulled"
    patcher.shim_pull_files("s3://bucket/models/m", str(dst), ignore_pattern=["*.safetensors"])
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()) == [
        "config.json",
        "sub/tokenizer.json",
    ]
    with pytest.raises(NotImplementedError):
        patcher.shim_pull_files(str(tmp_path / "bucket"), str(dst))


def test_distributed_streamer_streams_chunks(tmp_path: Path) -> None:
    from runai_model_streamer.distributed_streamer import DistributedStreamer
    from runai_model_streamer.file_streamer import FileChunks

    data = bytes(range(256)) * 64
    path = tmp_path / "blob"
    path.write_bytes(data)
    requests = [FileChunks(7, path, [0, 1000], [100, 3000]), FileChunks(8, path, 50, [10, 20])]
    with DistributedStreamer() as streamer:
        streamer.stream_files(requests, None, "cpu", True)
        assert streamer.is_distributed is False  # every process reads all, for now
        chunks = {(i, c): bytes(t.numpy()) for i, c, t in streamer.get_chunks()}
    assert chunks == {
        (7, 0): data[0:100],
        (7, 1): data[1000:4000],
        (8, 0): data[50:60],
        (8, 1): data[60:80],
    }


def test_file_chunks_accepts_both_upstream_forms(tmp_path: Path) -> None:
    from runai_model_streamer import FileChunks

    new = FileChunks(1, tmp_path / "f", [0, 10], [10, 5])
    old = FileChunks(1, tmp_path / "f", 0, [10, 5])  # upstream 0.15: offset + chunk sizes
    keywords = FileChunks(id=1, path=tmp_path / "f", offset=0, chunks=[10, 5])
    contiguous = FileChunks.contiguous(1, tmp_path / "f", 0, [10, 5])
    for chunks in (new, old, keywords, contiguous):
        assert (chunks.offsets, chunks.sizes, chunks.offset, chunks.chunks) == (
            [0, 10],
            [10, 5],
            0,
            [10, 5],
        )
        assert chunks.total_size() == 15 and chunks.max_chunk_size() == 10
    with pytest.raises(TypeError, match="not both"):
        FileChunks(1, "f", [0], [1], offset=0)
    with pytest.raises(TypeError, match="needs offsets"):
        FileChunks(1, "f", [0])
