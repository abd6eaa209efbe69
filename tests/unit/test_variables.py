"""RUNAI_STREAMER_* variables: upstream 0.17's keep their meaning or say why they have none,
an unknown name gets a "did you mean", the README's tables and the sources agree with
runai_model_streamer._variables, and the log goes where the user asked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from runai_model_streamer._variables import (
    KNOWN,
    OURS,
    UPSTREAM,
    environment_problems,
)

ROOT = Path(__file__).resolve().parents[2]


def test_upstream_variables_without_an_effect_say_why_and_what_to_set() -> None:
    for name, variable in UPSTREAM.items():
        problems = environment_problems({name: "1"})
        if variable.mapped:
            assert problems == {}, name
        else:
            assert problems[name].startswith(f"{name} (an upstream runai-model-streamer variable)")
            assert "has no effect here" in problems[name] and variable.note in problems[name]


def test_an_unknown_name_gets_the_closest_known_one() -> None:
    problems = environment_problems(
        {
            "RUNAI_STREAMER_CONCURENCY": "8",
            "RUNAI_STREAMER_S3_CONNECT_TIMOUT_MS": "100",
            "RUNAI_STREAMER_ZZZZZZZZZZZZZZZZZZZZZZ": "1",
            "RUNAI_STREAMER_CONCURRENCY": "8",  # ours: nothing to say
            "RUNAI_STREAMER_S3_MAX_RETRIES": "3",  # upstream's, mapped: nothing to say
            "RUNAI_STREAMER_IGNORED_WHEN_EMPTY": "",
            "OTHER_CONCURRENCY": "8",
        }
    )
    assert problems == {
        "RUNAI_STREAMER_CONCURENCY": "RUNAI_STREAMER_CONCURENCY is not a variable of "
        "runai-model-streamer; did you mean RUNAI_STREAMER_CONCURRENCY?",
        "RUNAI_STREAMER_S3_CONNECT_TIMOUT_MS": "RUNAI_STREAMER_S3_CONNECT_TIMOUT_MS is not a "
        "variable of runai-model-streamer; did you mean RUNAI_STREAMER_S3_CONNECT_TIMEOUT_MS?",
        "RUNAI_STREAMER_ZZZZZZZZZZZZZZZZZZZZZZ": "RUNAI_STREAMER_ZZZZZZZZZZZZZZZZZZZZZZ is not a "
        "variable of runai-model-streamer",
    }


def _run(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RUNAI_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


STREAM_TWICE = """
import sys
from safetensors.torch import save_file
import torch
from runai_model_streamer import SafetensorsStreamer
save_file({"w": torch.ones(4)}, "m.safetensors")
for _ in range(2):
    with SafetensorsStreamer() as s:
        s.stream_file("m.safetensors")
        assert [n for n, _ in s.get_tensors()] == ["w"]
"""


def test_each_warning_is_logged_once_per_process(tmp_path: Path) -> None:
    done = _run(
        STREAM_TWICE,
        {"RUNAI_STREAMER_FS_QUEUE_DEPTH": "64", "RUNAI_STREAMER_CONCURENCY": "4"},
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    queue = [line for line in lines if "RUNAI_STREAMER_FS_QUEUE_DEPTH" in line]
    typo = [line for line in lines if "did you mean RUNAI_STREAMER_CONCURRENCY" in line]
    assert len(queue) == 1 and "has no effect here" in queue[0], done.stderr
    assert len(typo) == 1, done.stderr


SUMMARY = "streamed 1 tensors from 1 files"


@pytest.mark.parametrize(
    "env, setup, copies",
    [
        ({}, "", 0),  # nothing asked: no handler, nothing on stderr
        ({"RUNAI_STREAMER_LOG_LEVEL": "INFO"}, "", 2),
        ({"RUNAI_STREAMER_LOG_TO_STDERR": "1"}, "", 2),  # upstream's: INFO to stderr
        ({"RUNAI_STREAMER_LOG_TO_STDERR": "1", "RUNAI_STREAMER_LOG_LEVEL": "WARNING"}, "", 0),
        # the process configures logging itself: every record once, through its handler
        ({"RUNAI_STREAMER_LOG_LEVEL": "INFO"}, "import logging; logging.basicConfig()", 2),
    ],
)
def test_the_log_reaches_stderr_when_asked_for_and_only_once(
    tmp_path: Path, env: dict[str, str], setup: str, copies: int
) -> None:
    done = _run(setup + "\n" + STREAM_TWICE, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(SUMMARY) == copies, done.stderr


def test_upstream_log_file_receives_the_log(tmp_path: Path) -> None:
    log = tmp_path / "streamer.log"
    env = {"RUNAI_STREAMER_LOG_FILE": str(log), "RUNAI_STREAMER_LOG_TO_STDERR": "1"}
    done = _run(STREAM_TWICE, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert log.read_text().count(SUMMARY) == 2
    assert done.stderr.count(SUMMARY) == 2  # asked for both: the file is not stderr


def test_the_summary_names_the_settings_in_effect(tmp_path: Path) -> None:
    env = {
        "RUNAI_STREAMER_LOG_TO_STDERR": "1",
        "RUNAI_STREAMER_CONCURRENCY": "3",
        "RUNAI_STREAMER_MEMORY_LIMIT": str(5 << 20),
    }
    done = _run(STREAM_TWICE, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("(concurrency 3, memory limit 5.00 MiB)") == 2, done.stderr


def test_a_bad_log_to_stderr_value_names_the_variable(tmp_path: Path) -> None:
    done = _run(STREAM_TWICE, {"RUNAI_STREAMER_LOG_TO_STDERR": "yes"}, tmp_path)
    assert done.returncode != 0
    assert "RUNAI_STREAMER_LOG_TO_STDERR='yes' must be 0 or 1" in done.stderr


def _readme_table(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_readme_lists_every_variable_with_its_upstream_counterpart() -> None:
    ours = _readme_table("## Environment variables")
    upstream = _readme_table("### Upstream runai-model-streamer's variables")
    listed = set(re.findall(r"`(RUNAI_STREAMER_[A-Z0-9_]+)`", ours))
    assert listed >= OURS, sorted(OURS - listed)
    assert listed - {n for n in listed if n in KNOWN} == set()  # none stale
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(RUNAI_STREAMER_[A-Z0-9_]+)` \| ([^|]+) \|", upstream, re.M)
    }
    assert set(rows) == set(UPSTREAM), sorted(set(rows) ^ set(UPSTREAM))
    for name, variable in UPSTREAM.items():
        assert rows[name].strip().startswith("mapped" if variable.mapped else "no effect"), name


def test_every_variable_the_sources_read_is_known() -> None:
    """A variable read anywhere (Python packages, C++) but missing from _variables would get
    a "not a variable" warning; this catches it when the code changes."""
    found: set[str] = set()
    quoted = re.compile(r"[\"'](RUNAI_STREAMER_[A-Z0-9_]*[A-Z0-9])[\"']")
    for pattern in ("py/**/*.py", "cpp/**/*.cc", "cpp/**/*.h"):
        for path in ROOT.glob(pattern):
            found.update(quoted.findall(path.read_text()))
    found.discard("RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME")  # upstream's constant, a name
    assert found - KNOWN == set(), sorted(found - KNOWN)


def test_the_engines_settings_match_its_header() -> None:
    """libstreamer reads its own variables (so a C caller gets them too); their names and
    defaults in runai_model_streamer._settings must be the header's."""
    from runai_model_streamer import _settings

    header = (ROOT / "cpp" / "streamer" / "impl" / "config.h").read_text()
    names = set(re.findall(r'kEnv\w+ = "(RUNAI_STREAMER_\w+)"', header))
    native = {name for name, s in _settings.ALL.items() if s.reader == "native"}
    assert names and native == names
    defaults = {
        "CONCURRENCY": r"kDefaultConcurrency = (\d+);",
        "CHUNK_BYTESIZE": r"kDefaultChunkBytesize = int64_t\{(\d+)\} << 20;",
        "TIMEOUT_MS": r"kDefaultBackendTimeoutMs = (\d+);",
    }
    for name, pattern in defaults.items():
        match = re.search(pattern, header)
        assert match, pattern
        value = int(match.group(1)) << (20 if "<<" in pattern else 0)
        assert _settings.ALL["RUNAI_STREAMER_" + name].default == value, name


def test_every_setting_read_in_python_parses_its_default_form() -> None:
    from runai_model_streamer import _settings

    for name, setting in _settings.ALL.items():
        if setting.reader == "native":
            with pytest.raises(TypeError, match="read by libstreamer"):
                setting.read({})
        else:
            assert setting.read({}) == setting.default, name
            assert setting.read({name: "  "}) == setting.default, name


def test_the_http_option_bounds_match_the_cpp_layer() -> None:
    """The plugins' HTTP variables are checked in Python (errors name the variable) and their
    options again in C++ (errors name the option): the bounds must be the same."""
    from runai_model_streamer import _settings

    source = (ROOT / "cpp" / "common" / "http" / "object_client.cc").read_text()
    cpp = {
        option: (int(low), int(high.replace("INT32_MAX", str(2**31 - 1))))
        for option, low, high in re.findall(
            r'key == "(\w+)"\) return bounded\(&http_\.\w+, (\d+), (\w+)\)', source
        )
    }
    attempts = re.search(
        r'key == "max_attempts"\) \{\s*status = ParseNumber\(key, value, (\d+), (\d+)', source
    )
    assert attempts, "max_attempts"
    cpp["max_attempts"] = (int(attempts.group(1)), int(attempts.group(2)))
    python = {option: (low, high) for option, low, high, _ in _settings.HTTP_OPTIONS.values()}
    assert cpp == python
