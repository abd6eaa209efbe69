"""What a bucket holds cannot make a download write outside its destination, and a URI asks for
exactly the key written. moto stores any key, as S3 does; SeaweedFS checks signatures."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch
from runai_model_streamer import (
    ObjectStorageModel,
    SafetensorsStreamer,
    UnsafeObjectKeyError,
    list_safetensors,
    pull_files,
)
from runai_model_streamer.cli import main
from safetensors.torch import save, save_file

from .model_files import check_stream
from .servers import S3Server


def _bucket(server: S3Server, bucket: str, objects: dict[str, bytes]) -> None:
    client = server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert set(objects) <= listed, f"the server did not store the keys as written: {listed}"


def _files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


#: key under the prefix "model/" -> words the refusal must contain
HOSTILE = {
    "model//abs/escaped.txt": "absolute path",
    "model/../escaped.txt": "'..' path segment",
    "model/a/../../escaped.txt": "'..' path segment",
    "model/./here.txt": "'.' path segment",
    "model/a//b.txt": "empty path segment",
    "model/..\\..\\escaped.txt": "backslash",
}


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_a_hostile_key_is_refused_before_anything_is_written(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    bucket = f"hostile{sorted(HOSTILE).index(key)}"
    _bucket(moto, bucket, {"model/config.json": b"{}", key: b"payload"})
    s3_env.chdir(tmp_path)  # a relative escape would land here
    dst = tmp_path / "deep" / "dst"
    for call in (
        lambda: pull_files(f"s3://{bucket}/model/", dst),
        lambda: pull_files(f"s3://{bucket}/model", dst),
    ):
        with pytest.raises(UnsafeObjectKeyError) as raised:
            call()
        message = str(raised.value)
        assert f"s3://{bucket}/model" in message and repr(key)[1:-1] in message, message
        assert HOSTILE[key] in message, message
    assert not dst.exists(), "nothing may be created, not even the destination"
    assert _files_under(tmp_path) == [], _files_under(tmp_path)
    assert not Path("/abs/escaped.txt").exists()


def test_object_storage_model_refuses_and_leaves_no_marker(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    _bucket(moto, "hostile-osm", {"model/w.bin": b"w", "model//tmp/evil": b"evil"})
    dst = tmp_path / "cache"
    with (
        pytest.raises(UnsafeObjectKeyError),
        ObjectStorageModel("s3://hostile-osm/model", dst) as m,
    ):
        m.pull_files()
    assert not (dst / ObjectStorageModel.SENTINEL_NAME).exists()
    assert _files_under(dst) == []


def test_a_symlink_inside_the_destination_cannot_lead_out(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    _bucket(moto, "hostile-link", {"model/link/payload.txt": b"payload", "model/ok.txt": b"ok"})
    outside = tmp_path / "outside"
    outside.mkdir()
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "link").symlink_to(outside)
    with pytest.raises(UnsafeObjectKeyError) as raised:
        pull_files("s3://hostile-link/model/", dst)
    assert "model/link/payload.txt" in str(raised.value) and str(outside) in str(raised.value)
    assert list(outside.iterdir()) == [] and sorted(p.name for p in dst.iterdir()) == ["link"]


def test_a_key_that_is_a_file_and_a_directory_is_refused(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    _bucket(moto, "hostile-clash", {"model/a": b"file", "model/a/b": b"below the file"})
    with pytest.raises(UnsafeObjectKeyError) as raised:
        pull_files("s3://hostile-clash/model/", tmp_path / "dst")
    assert "both a file and a directory" in str(raised.value)
    assert not (tmp_path / "dst").exists()


def test_a_temporary_name_planted_as_a_link_is_not_written_through(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The download's temporary files are new files (O_EXCL), never an existing name."""
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    _bucket(moto, "planted", {"model/w.bin": b"weights"})
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "w.bin.partial").symlink_to(victim)  # the name the old code wrote to
    pull_files("s3://planted/model", dst)
    assert (dst / "w.bin").read_bytes() == b"weights" and victim.read_bytes() == b"untouched"


def test_an_empty_prefix_is_a_file_not_found_error(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    _bucket(moto, "sparse", {"other/w.bin": b"w"})
    with pytest.raises(FileNotFoundError) as raised:
        pull_files("s3://sparse/model", tmp_path / "dst")
    assert "s3://sparse/model" in str(raised.value)
    assert not (tmp_path / "dst").exists()
    assert list_safetensors("s3://sparse/model") == []


def _shard(seed: int) -> tuple[dict[str, torch.Tensor], bytes]:
    """Four tensors named after ``seed`` and a safetensors file of them."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {f"s{seed}.w{i}": torch.randn(16, 8 + i, generator=generator) for i in range(4)}
    return tensors, save(tensors)


def test_a_prefix_without_its_slash_is_the_directory_it_stands_for(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    first_bytes, second_bytes = _shard(1)[1], _shard(2)[1]
    _bucket(
        moto,
        "prefixes",
        {
            "llama/a.safetensors": first_bytes,
            "llama/b.safetensors": second_bytes,
            "llama/config.json": b"{}",
            "llama-other/c.safetensors": first_bytes,  # shares the text, not the directory
        },
    )
    expected = ["s3://prefixes/llama/a.safetensors", "s3://prefixes/llama/b.safetensors"]
    assert list_safetensors("s3://prefixes/llama") == expected
    assert list_safetensors("s3://prefixes/llama/") == expected
    pull_files("s3://prefixes/llama", tmp_path / "pulled")
    assert _files_under(tmp_path / "pulled") == ["a.safetensors", "b.safetensors", "config.json"]
    with ObjectStorageModel("s3://prefixes/llama", tmp_path / "osm") as model:
        model.pull_files(allow_pattern=["*.json"])
    assert (tmp_path / "osm" / "config.json").read_bytes() == b"{}"
    assert main(["stream", "s3://prefixes/llama", "--quiet", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "from 2 file(s)" in out and "verify: all 8 tensors equal" in out, out


def test_cli_verify_of_an_object_reads_an_independent_copy(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    _, data = _shard(3)
    _bucket(moto, "verified", {"m/model.safetensors": data})
    assert main(["stream", "s3://verified/m/model.safetensors", "--verify", "--quiet"]) == 0
    assert "verify: all 4 tensors equal" in capsys.readouterr().out
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("runai-verify-*")]


def test_cli_pull_downloads_with_patterns(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    _, data = _shard(4)
    _bucket(moto, "pulled", {"m/a.safetensors": data, "m/t.json": b"{}", "m/x/r.md": b"read me"})
    dst = tmp_path / "dst"
    assert main(["pull", "s3://pulled/m", str(dst), "--ignore", "*.md", "--quiet"]) == 0
    assert _files_under(dst) == ["a.safetensors", "t.json"]
    assert f"from s3://pulled/m into {dst}" in capsys.readouterr().out
    assert main(["pull", "s3://pulled/nothing", str(tmp_path / "none"), "--quiet"]) == 1
    assert "s3://pulled/nothing: no objects under this prefix" in capsys.readouterr().err


#: keys with segments that URL normalisation would remove, and the key they would turn into
EXACT_KEYS = {
    "exact/a/../x.safetensors": "exact/x.safetensors",
    "exact/./y.safetensors": "exact/y.safetensors",
    "exact/b//z.safetensors": "exact/b/z.safetensors",
}


def test_a_uri_asks_for_exactly_the_key_written(
    moto: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Header reads (HEAD, through curl) and data reads (DirectGet) alike. (SeaweedFS refuses
    keys with dot segments and folds "//", so it cannot hold these keys.)"""
    server = moto
    s3_env.setenv("AWS_ENDPOINT_URL", server.endpoint)
    objects, paths = {}, []
    for index, (key, normalised) in enumerate(sorted(EXACT_KEYS.items())):
        tensors, data = _shard(10 + index)
        objects[key] = data
        objects[normalised] = _shard(20 + index)[1]  # what a normalised URL would fetch
        paths.append(tmp_path / f"{index}.safetensors")
        save_file(tensors, str(paths[-1]))
    _bucket(server, "exact-keys", objects)
    check_stream([f"s3://exact-keys/{key}" for key in sorted(EXACT_KEYS)], paths)
    with SafetensorsStreamer() as streamer:  # and the header read asks for it too
        streamer.stream_file(f"s3://exact-keys/{sorted(EXACT_KEYS)[0]}")
        assert sum(1 for _ in streamer.get_tensors()) == 4
