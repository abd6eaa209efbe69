"""hf:// against the test Hub on 127.0.0.1 (hub_server.py): resolve, redirect to signed CDN URLs
and ranged GETs there, tree listings page after page, revisions pinned to one commit per
stream, the SHA-256 of every LFS file checked as it lands, and the Hub's errors."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from runai_model_streamer import (
    ChecksumMismatchError,
    SafetensorsStreamer,
    list_safetensors,
    pull_files,
)
from runai_model_streamer._cache_entry import wait_for_writers
from safetensors.torch import save

from .hub_server import HubServer

REPO = "org/tiny-model"
TOKEN = "hf_test_token"


def shards(seed: int, count: int = 3) -> dict[str, bytes]:
    """A sharded checkpoint (tensors named s<i>.*) and the small files a model repo has."""
    generator = torch.Generator().manual_seed(seed)
    files = {
        f"model-{i + 1:05d}-of-{count:05d}.safetensors": save(
            {f"s{i}.w{j}": torch.randn(32, 16 + j, generator=generator) for j in range(8)}
        )
        for i in range(count)
    }
    files["config.json"] = b'{"model_type": "tiny"}'
    files["nested/extra.safetensors"] = save({"extra": torch.arange(10)})
    return files


def stream(uris: list[str], **options: object) -> dict[str, torch.Tensor]:
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(uris, **options)  # type: ignore[arg-type]
        return dict(streamer.get_tensors())


def expected(files: dict[str, bytes], names: list[str]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    tensors: dict[str, torch.Tensor] = {}
    for name in names:
        tensors.update(load(files[name]))
    return tensors


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), name


def weights(files: dict[str, bytes]) -> list[str]:
    return sorted(n for n in files if n.endswith(".safetensors") and "/" not in n)


def test_a_model_streams_from_the_hub_through_signed_urls(hub: HubServer) -> None:
    files = shards(1)
    hub.commit(REPO, files)
    names = weights(files)
    got = stream([f"hf://{REPO}/{name}" for name in names])
    assert_same(got, expected(files, names))
    assert not any(hub.cdn_authorizations)  # the CDN was never sent a credential
    assert len(hub.cdn_authorizations) >= len(names)


def test_the_token_goes_to_the_hub_only(hub: HubServer, tmp_path: Path) -> None:
    files = shards(2)
    hub.commit(REPO, files, private=True)
    names = weights(files)
    with pytest.raises(PermissionError) as raised:
        stream([f"hf://{REPO}/{names[0]}"])
    message = str(raised.value)
    assert f"hf://{REPO}/{names[0]}" in message and "HF_TOKEN" in message
    # huggingface_hub's token file (what `hf auth login` writes), through HF_TOKEN_PATH
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN_PATH", str(token_file))
        assert_same(stream([f"hf://{REPO}/{n}" for n in names]), expected(files, names))
    assert f"Bearer {TOKEN}" in hub.hub_authorizations
    assert not any(hub.cdn_authorizations)
    assert all(TOKEN not in request for request in hub.requests)


def test_a_gated_repo_says_what_to_do(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.commit(REPO, shards(3), gated=True)
    monkeypatch.setenv("HF_TOKEN", "hf_not_granted")
    with pytest.raises(PermissionError, match=r"GatedRepo.*accept its conditions"):
        stream([f"hf://{REPO}/model-00001-of-00003.safetensors"])


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("hf://org/no-such-model/model.safetensors", "RepoNotFound"),
        (f"hf://{REPO}@no-such-branch/model-00001-of-00003.safetensors", "RevisionNotFound"),
        (f"hf://{REPO}/missing.safetensors", "EntryNotFound"),
    ],
)
def test_what_is_missing_is_named(hub: HubServer, uri: str, code: str) -> None:
    hub.commit(REPO, shards(4))
    with pytest.raises((FileNotFoundError, PermissionError)) as raised:
        stream([uri])
    assert uri in str(raised.value) and code in str(raised.value)


def test_a_branch_moved_mid_stream_serves_the_first_commit_whole(hub: HubServer) -> None:
    first, second = shards(5), shards(6)
    hub.commit(REPO, first)
    moved = []

    def move_once(repo_id: str, path: str) -> None:
        if not moved:  # right after the first file was resolved
            moved.append(path)
            hub.commit(REPO, second)

    hub.on_resolve = move_once
    names = weights(first)
    got = stream([f"hf://{REPO}/{name}" for name in names])
    assert moved
    assert_same(got, expected(first, names))
    # the next stream reads the new commit
    hub.on_resolve = None
    assert_same(stream([f"hf://{REPO}/{n}" for n in names]), expected(second, names))


def test_revisions_tags_and_commits(hub: HubServer) -> None:
    old, new = shards(7), shards(8)
    commit = hub.commit(REPO, old, branch="refs/pr/1")
    hub.commit(REPO, new)
    name = "model-00002-of-00003.safetensors"
    assert_same(stream([f"hf://{REPO}@refs%2Fpr%2F1/{name}"]), expected(old, [name]))
    assert_same(stream([f"hf://{REPO}@{commit}/{name}"]), expected(old, [name]))
    assert_same(stream([f"hf://{REPO}@main/{name}"]), expected(new, [name]))


def test_datasets_stream_as_models_do(hub: HubServer) -> None:
    files = shards(20)
    hub.commit(f"datasets/{REPO}", files)
    names = weights(files)
    assert list_safetensors(f"hf://datasets/{REPO}@main") == [
        f"hf://datasets/{REPO}@main/{name}" for name in names
    ]
    uris = [f"hf://datasets/{REPO}/{name}" for name in names]
    assert_same(stream(uris), expected(files, names))
    with pytest.raises(PermissionError, match=f"RepoNotFound.*{REPO} does not exist, or it is"):
        stream([f"hf://{REPO}/{names[0]}"])  # no model of that name (anonymous: a 401)


def test_a_flipped_bit_is_caught_and_named(hub: HubServer) -> None:
    files = shards(9)
    hub.commit(REPO, files)
    name = "model-00002-of-00003.safetensors"
    sha = hashlib.sha256(files[name]).hexdigest()
    hub.flip_bit.add(sha)
    with pytest.raises(ChecksumMismatchError) as raised:
        stream([f"hf://{REPO}/{n}" for n in weights(files)])
    message = str(raised.value)
    assert name in message and "sha256" in message and sha in message


def test_files_kept_in_git_are_checked_against_their_blob_id(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = shards(18)
    hub.commit(REPO, files)
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        pull_files(f"hf://{REPO}", str(tmp_path / "good"), allow_pattern=["*.json"])
    assert (tmp_path / "good" / "config.json").read_bytes() == files["config.json"]
    assert "git-sha1" in caplog.text
    hub.flip_bit.add(hashlib.sha256(files["config.json"]).hexdigest())
    with pytest.raises(ChecksumMismatchError, match=r"config\.json.*git-sha1"):
        pull_files(f"hf://{REPO}", str(tmp_path / "bad"), allow_pattern=["*.json"])
    assert not (tmp_path / "bad" / "config.json").exists()


def test_listing_pages_and_pulling_a_snapshot(hub: HubServer, tmp_path: Path) -> None:
    files = shards(10, count=5)
    hub.commit(REPO, files)
    assert hub.page_size < len(files)  # the listing takes several pages
    listed = list_safetensors(f"hf://{REPO}")  # the files directly under the prefix
    assert listed == [f"hf://{REPO}/{name}" for name in weights(files)]
    assert list_safetensors(f"hf://{REPO}/nested") == [f"hf://{REPO}/nested/extra.safetensors"]
    pull_files(f"hf://{REPO}", str(tmp_path / "snapshot"))
    for name, data in files.items():
        assert (tmp_path / "snapshot" / name).read_bytes() == data, name


def test_throttling_and_expired_urls_are_retried(hub: HubServer) -> None:
    files = shards(11)
    hub.commit(REPO, files)
    names = weights(files)
    hub.throttle = 2  # 429 with Retry-After
    hub.refuse_signed = 1  # the first signed URL used is refused: asked for again
    assert_same(stream([f"hf://{REPO}/{n}" for n in names]), expected(files, names))
    assert hub.throttle == 0 and hub.refuse_signed == 0


@pytest.mark.parametrize(
    "uri",
    [
        f"hf://{REPO}/../other/model.safetensors",
        f"hf://{REPO}/./model.safetensors",
        "hf://../tiny-model/model.safetensors",
        "hf://org/../model.safetensors",
        "hf://just-a-name/model.safetensors/",
    ],
)
def test_bad_uris_are_refused(hub: HubServer, uri: str) -> None:
    hub.commit(REPO, shards(12))
    with pytest.raises(ValueError, match="hf://"):
        stream([uri])
    assert not hub.requests


def test_the_cache_serves_a_second_load_with_no_download(hub: HubServer, tmp_path: Path) -> None:
    files = shards(13)
    hub.commit(REPO, files)
    names = weights(files)
    uris = [f"hf://{REPO}/{name}" for name in names]
    stream(uris, cache_dir=tmp_path / "cache")
    wait_for_writers()
    downloads = len(hub.cdn_authorizations)
    assert downloads >= len(names)
    assert_same(stream(uris, cache_dir=tmp_path / "cache"), expected(files, names))
    assert len(hub.cdn_authorizations) == downloads  # only the HEADs went to the Hub


def _download_with_huggingface_hub(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Path:
    """huggingface_hub's own client fetches the repository into its cache (in the fixture's
    HF_HOME): revision API, recursive tree pages, resolve and its redirect. (It reads its
    variables once, at import: the endpoint and the cache are given again here.)"""
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    cache = Path(os.environ["HF_HOME"]) / "hub"
    endpoint = os.environ["HF_ENDPOINT"]
    return Path(
        huggingface_hub.snapshot_download(REPO, cache_dir=cache, endpoint=endpoint, **options)
    )


def test_huggingface_hub_itself_downloads_from_the_test_hub_and_streams_reuse_it(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test Hub speaks the protocol huggingface_hub speaks; what it downloaded, in its
    cache's layout, is what a stream then reads, from local disk (one HEAD to learn the
    commit, no byte from the CDN)."""
    files = shards(14)
    commit = hub.commit(REPO, files)
    snapshot = _download_with_huggingface_hub(monkeypatch)
    assert snapshot.parts[-3:] == ("models--org--tiny-model", "snapshots", commit)
    assert sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()) == (
        sorted(files)
    )
    names = weights(files)
    downloads, asked = len(hub.cdn_authorizations), len(hub.requests)
    assert_same(stream([f"hf://{REPO}/{name}" for name in names]), expected(files, names))
    assert len(hub.cdn_authorizations) == downloads
    assert len(hub.requests) == asked + 1  # the HEAD that says which commit main is
    # a file the cache lacks comes from the Hub, beside the ones it holds
    (snapshot / names[0]).unlink()
    assert_same(stream([f"hf://{REPO}/{name}" for name in names]), expected(files, names))
    assert len(hub.cdn_authorizations) > downloads


def test_what_a_cached_stream_fetched_is_shared_with_huggingface_hub(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the write-through cache, hf:// files verified as they streamed are also put in
    huggingface_hub's cache (blob, snapshot link, refs/main): its client then finds them
    offline, and online downloads nothing more."""
    import huggingface_hub

    files = shards(21)
    commit = hub.commit(REPO, files)
    names = weights(files)
    stream([f"hf://{REPO}/{name}" for name in names], cache_dir=tmp_path / "cache")
    wait_for_writers()
    cache = Path(os.environ["HF_HOME"]) / "hub"
    assert (cache / "models--org--tiny-model" / "refs" / "main").read_text() == commit
    for name in names:
        found = huggingface_hub.hf_hub_download(REPO, name, cache_dir=cache, local_files_only=True)
        assert Path(found).read_bytes() == files[name]
        blob = Path(found).resolve()
        assert blob.name == hashlib.sha256(files[name]).hexdigest()
        assert blob.stat().st_nlink == 2  # the cache entry's own file, linked
    downloads = len(hub.cdn_authorizations)
    _download_with_huggingface_hub(monkeypatch, allow_patterns=names)
    assert len(hub.cdn_authorizations) == downloads


def test_a_moved_branch_is_read_from_the_hub_not_from_a_stale_cache(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.commit(REPO, shards(15))
    _download_with_huggingface_hub(monkeypatch)
    newer = shards(16)
    hub.commit(REPO, newer)
    names = weights(newer)
    assert_same(stream([f"hf://{REPO}/{name}" for name in names]), expected(newer, names))


def test_offline_streams_come_from_the_cache_alone(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = shards(17)
    commit = hub.commit(REPO, files)
    names = weights(files)
    _download_with_huggingface_hub(monkeypatch, allow_patterns=names[:2])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    for revision in ("", "@main", f"@{commit}"):
        uris = [f"hf://{REPO}{revision}/{name}" for name in names[:2]]
        assert_same(stream(uris), expected(files, names[:2]))
    assert len(hub.requests) == asked  # not one request
    with pytest.raises(FileNotFoundError, match=r"HF_HUB_OFFLINE.*no complete copy"):
        stream([f"hf://{REPO}/{names[2]}"])  # never downloaded
    with pytest.raises(FileNotFoundError, match=r"does not know revision 'v2'"):
        stream([f"hf://{REPO}@v2/{names[0]}"])
    assert len(hub.requests) == asked


def test_the_cli_streams_and_pulls_hf_uris(
    hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runai_model_streamer.cli import main

    files = shards(19)
    hub.commit(REPO, files)
    assert main(["stream", f"hf://{REPO}", "--quiet", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "from 3 file(s)" in out and "verify: all 24 tensors equal" in out, out
    assert (
        main(["pull", f"hf://{REPO}", str(tmp_path / "dst"), "--allow", "*.json", "--quiet"]) == 0
    )
    assert (tmp_path / "dst" / "config.json").read_bytes() == files["config.json"]
    assert main(["stream", "hf://org/no-such-model", "--quiet"]) == 1
    assert "hf://org/no-such-model" in capsys.readouterr().err
