"""Environment variables: validation errors name the variable and the value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from runai_model_streamer import SafetensorsStreamer, StreamerConfigError
from runai_model_streamer._logging import apply_log_level
from runai_model_streamer._settings import parse_memory_limit, parse_size
from safetensors.torch import save_file


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, -1),
        ("", -1),
        ("-1", -1),
        ("0", 0),
        ("4096", 4096),
        (" 17 ", 17),
        ("2MiB", 2 << 20),
        ("1GB", 10**9),
    ],
)
def test_memory_limit_values(value: str | None, expected: int) -> None:
    assert parse_memory_limit(value) == expected


@pytest.mark.parametrize("value", ["-2", "lots", "1.5.3", "true"])
def test_memory_limit_rejects(value: str) -> None:
    with pytest.raises(StreamerConfigError, match="RUNAI_STREAMER_MEMORY_LIMIT") as raised:
        parse_memory_limit(value)
    assert repr(value) in str(raised.value)


def test_parse_size() -> None:
    assert parse_size("256MB") == 256 * 10**6
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    with pytest.raises(ValueError, match="not a size"):
        parse_size("big")


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.safetensors"
    save_file({"a": torch.ones(4)}, str(path))
    return path


def test_bad_memory_limit_env_fails_stream(
    small_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "-5")
    with SafetensorsStreamer() as streamer, pytest.raises(StreamerConfigError, match="-5"):
        streamer.stream_file(small_file)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RUNAI_STREAMER_CONCURRENCY", "zero"),
        ("RUNAI_STREAMER_CONCURRENCY", "0"),
        ("RUNAI_STREAMER_CHUNK_BYTESIZE", "12"),
        ("RUNAI_STREAMER_CHUNK_BYTESIZE", "x"),
    ],
)
def test_bad_engine_env_raises_naming_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer():
        pass
    assert variable in str(raised.value) and value in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_engine_env_is_honoured(small_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_CONCURRENCY", "3")
    monkeypatch.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", "4096")
    with SafetensorsStreamer() as streamer:
        assert streamer.file_streamer.engine().config.concurrency == 3
        assert streamer.file_streamer.engine().config.chunk_bytesize == 4096
        streamer.stream_file(small_file)
        assert [n for n, _ in streamer.get_tensors()] == ["a"]


def test_log_level_env() -> None:
    logger = logging.getLogger("runai_model_streamer.test_log_level")
    apply_log_level(logger, {"RUNAI_STREAMER_LOG_LEVEL": "debug"})
    assert logger.level == logging.DEBUG
    apply_log_level(logger, {"RUNAI_STREAMER_LOG_LEVEL": "30"})
    assert logger.level == logging.WARNING
    with pytest.warns(RuntimeWarning, match="RUNAI_STREAMER_LOG_LEVEL='loud'"):
        apply_log_level(logger, {"RUNAI_STREAMER_LOG_LEVEL": "loud"})


def test_invalid_log_level_fails_the_streamer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_LOG_LEVEL", "loud")
    streamer = SafetensorsStreamer()
    with pytest.raises(StreamerConfigError, match=r"RUNAI_STREAMER_LOG_LEVEL='loud'"):
        streamer.__enter__()


def test_summary_is_logged_at_info(small_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"), SafetensorsStreamer() as s:
        s.stream_file(small_file)
        list(s.get_tensors())
    summaries = [r.getMessage() for r in caplog.records if r.name == "runai_model_streamer"]
    assert any("1 tensors from 1 files" in m and "GB/s" in m for m in summaries), summaries


@pytest.mark.parametrize("variable", ["RUNAI_STREAMER_HUGE_PAGES", "RUNAI_STREAMER_PREFAULT"])
def test_flag_variables_are_validated(
    small_file: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "yes")
    with SafetensorsStreamer() as streamer, pytest.raises(StreamerConfigError) as raised:
        streamer.stream_file(small_file)
    assert variable in str(raised.value) and "'yes'" in str(raised.value)


def test_object_concurrency_applies_to_object_storage_streams_only(
    testfs_root: Path, small_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNAI_STREAMER_OBJ_CONCURRENCY (upstream 0.17's variable): the worker count of streams
    whose files are all object-storage URIs; local files keep RUNAI_STREAMER_CONCURRENCY."""
    monkeypatch.setenv("RUNAI_STREAMER_CONCURRENCY", "5")
    monkeypatch.setenv("RUNAI_STREAMER_OBJ_CONCURRENCY", "3")
    (testfs_root / "m.safetensors").write_bytes(small_file.read_bytes())
    with SafetensorsStreamer() as streamer:
        reader = streamer.file_streamer
        for path, workers in [
            ("testfs://m.safetensors", 3),
            (small_file, 5),
            ("testfs://m.safetensors", 3),
        ]:
            streamer.stream_file(path)
            assert [n for n, _ in streamer.get_tensors()] == ["a"]
            assert reader.engine().config.concurrency == workers, path


@pytest.mark.parametrize("value", ["0", "-2", "many", "1025", "2.5"])
def test_a_bad_object_concurrency_names_the_variable(
    testfs_root: Path, small_file: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_OBJ_CONCURRENCY", value)
    (testfs_root / "m.safetensors").write_bytes(small_file.read_bytes())
    with SafetensorsStreamer() as streamer, pytest.raises(StreamerConfigError) as raised:
        streamer.stream_file("testfs://m.safetensors")
    assert "RUNAI_STREAMER_OBJ_CONCURRENCY" in str(raised.value) and repr(value) in str(
        raised.value
    )
