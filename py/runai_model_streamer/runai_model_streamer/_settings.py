"""Every ``RUNAI_STREAMER_*`` environment variable, defined once: its name, its parser (type
and bounds), its default, what it means, who reads it and upstream 0.17's counterpart.

Everything that reads a variable goes through its :class:`Setting` here: the Python core, the
plugin packages (which import their settings from here; they are released with the core) and,
for the engine's own variables (``reader="native"``), only the description: libstreamer reads
and validates those itself (``cpp/streamer/impl/config.h`` holds their bounds), so a C caller
gets them too. A bad value raises :class:`~runai_model_streamer.StreamerConfigError` (a
plugin's own subclass for the plugins) naming the variable and the value; an unset or empty
variable is the default. ``_variables`` derives the names every version knows from here, and
the tests check the README's table against it.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from runai_model_streamer._errors import StreamerConfigError

T = TypeVar("T")
PREFIX = "RUNAI_STREAMER_"
UNLIMITED = -1
LARGEST_TENSOR = 0
MAX_CONCURRENCY = 1024


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable. ``parse`` turns a set value into ``T`` or raises ValueError
    saying what the value must be (None: read natively, by libstreamer)."""

    name: str
    default: T
    parse: Callable[[str], T] | None
    meaning: str
    reader: str = "core"  # "core", "native" (libstreamer), or the plugin: "s3", "gcs"...
    upstream: str = ""  # upstream 0.17's variable of this meaning, when it has one

    def raw(self, env: Mapping[str, str] | None = None) -> str:
        """The value as set, stripped ("" when unset)."""
        return (os.environ if env is None else env).get(self.name, "").strip()

    def read(
        self,
        env: Mapping[str, str] | None = None,
        error: type[StreamerConfigError] = StreamerConfigError,
    ) -> T:
        """The value, parsed and checked; the default when unset or empty."""
        if self.parse is None:
            raise TypeError(f"{self.name} is read by libstreamer, not here")
        raw = self.raw(env)
        if not raw:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as why:
            raise error(f"{self.name}={raw!r} {why}") from None


# ---- parsers: each raises ValueError with what the value must be ----------------------------

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgt", start=1):
    _UNITS.update({_letter: 1000**_power, _letter + "b": 1000**_power})
    _UNITS.update({_letter + "i": 1024**_power, _letter + "ib": 1024**_power})


def parse_size(text: str) -> int:
    """Parses ``"256MB"``, ``"1.5GiB"``, ``"4096"``... into bytes; raises ValueError."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 256MB, 1GiB)")
    number, unit = match.group(1), (match.group(2) or "").lower()
    return int(float(number) * _UNITS[unit]) if "." in number else int(number) * _UNITS[unit]


def flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return text == "1"


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise ValueError(f"must be an integer in {low}..{high}")
        return int(text)

    return parse


def size_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = parse_size(text)
        except ValueError:
            value = -1
        if value < minimum:
            raise ValueError(f"must be a size of at least {minimum} bytes (examples: 64MiB, 1GiB)")
        return value

    return parse


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value < math.inf):
        raise ValueError("must be a positive number of seconds")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError("must be " + ", ".join(choices[:-1]) + f" or {choices[-1]}")
        return text.lower()

    return parse


def text(value: str) -> str:
    return value


def log_level(value: str) -> int:
    if value.lstrip("-").isdigit():
        return int(value)
    level = logging.getLevelName(value.upper())
    if isinstance(level, int):
        return level
    raise ValueError("is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")


def memory_limit(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        try:
            number = parse_size(value)
        except ValueError:
            raise ValueError(
                "is not a number of bytes (-1: unlimited, 0: the largest tensor, N: at most N "
                "bytes in flight)"
            ) from None
    if number < UNLIMITED:
        raise ValueError(
            "is negative; use -1 for unlimited, 0 for the largest tensor, or a positive number "
            "of bytes"
        )
    return number


# ---- the engine's (read by libstreamer) -----------------------------------------------------

CONCURRENCY = Setting(
    PREFIX + "CONCURRENCY", 16, None, "worker threads of the engine", "native", "same"
)
CHUNK_BYTESIZE = Setting(
    PREFIX + "CHUNK_BYTESIZE", 8 << 20, None, "bytes of one read piece", "native", "same"
)
TIMEOUT_MS = Setting(
    PREFIX + "TIMEOUT_MS", 60000, None, "timeout of one object-storage operation", "native"
)
FS_STRATEGY = Setting(
    PREFIX + "FS_STRATEGY",
    "auto",
    None,
    "how local files are read: auto, buffered or direct (and upstream's names)",
    "native",
    "same",
)
IO_URING = Setting(
    PREFIX + "IO_URING", True, None, "direct reads through io_uring where offered", "native"
)

# ---- the Python core's ----------------------------------------------------------------------

MEMORY_LIMIT = Setting(
    PREFIX + "MEMORY_LIMIT",
    UNLIMITED,
    memory_limit,
    "bytes of destination memory in flight: -1 unlimited, 0 the largest tensor, N at most N",
    upstream="same",
)


def parse_memory_limit(value: object, source: str | None = None) -> int:
    """A memory limit given as an argument (``source`` names it): -1 (unlimited), 0 (largest
    tensor) or a positive byte count, as an int or a string like the variable's (default
    ``source``: the variable)."""
    source = MEMORY_LIMIT.name if source is None else source
    if value is None:
        return UNLIMITED
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise StreamerConfigError(f"{source}={value!r} is not a number of bytes")
    try:
        return memory_limit(str(value).strip()) if str(value).strip() else UNLIMITED
    except ValueError as why:
        raise StreamerConfigError(f"{source}={value!r} {why}") from None


OBJ_CONCURRENCY: Setting[int | None] = Setting(
    PREFIX + "OBJ_CONCURRENCY",
    None,
    integer(1, MAX_CONCURRENCY),
    "worker threads of a stream whose files are all object-storage URIs",
    upstream="same",
)
LOG_LEVEL: Setting[int | None] = Setting(
    PREFIX + "LOG_LEVEL",
    None,
    log_level,
    "level of the runai_model_streamer logger",
    upstream="same",
)
LOG_TO_STDERR = Setting(
    PREFIX + "LOG_TO_STDERR",
    False,
    flag,
    "1: the log goes to stderr where no handler would show it",
    upstream="same",
)
LOG_FILE = Setting(PREFIX + "LOG_FILE", "", text, "append the log to this file", upstream="same")
VERIFY = Setting(
    PREFIX + "VERIFY",
    "auto",
    one_of("auto", "require", "off"),
    "checksums of objects read whole: auto (check what the store keeps), require, off",
)
CACHE_DIR = Setting(
    PREFIX + "CACHE_DIR",
    "",
    text,
    "directory of the local cache of objects streamed whole and verified (unset: no cache)",
)
CACHE_MAX_BYTES: Setting[int | None] = Setting(
    PREFIX + "CACHE_MAX_BYTES",
    None,
    size_at_least(0),
    "most bytes the cache holds; least recently used entries are evicted (unset: no limit)",
)
CACHE_OFFLINE = Setting(
    PREFIX + "CACHE_OFFLINE", False, flag, "1: a cached object is used without asking its store"
)
HUGE_PAGES = Setting(PREFIX + "HUGE_PAGES", False, flag, "1: buffers advised to huge pages")
PREFAULT = Setting(PREFIX + "PREFAULT", False, flag, "1: buffers faulted in before reading")
DIST = Setting(
    PREFIX + "DIST",
    "auto",
    one_of("0", "1", "auto"),
    "when an is_distributed=True stream is shared",
    upstream="same",
)
DIST_GLOBAL = Setting(
    PREFIX + "DIST_GLOBAL", False, flag, "1: one group of all ranks", upstream="same"
)
DIST_TIMEOUT = Setting(
    PREFIX + "DIST_TIMEOUT",
    600.0,
    positive_seconds,
    "seconds a rank waits for the others at any step of a shared stream",
)
DIST_BUFFER_BYTES = Setting(
    PREFIX + "DIST_BUFFER_BYTES",
    64 << 20,
    size_at_least(4096),
    "bytes a group exchanges per round",
    upstream=PREFIX + "DIST_BUFFER_MIN_BYTESIZE",
)
#: upstream's name of DIST_BUFFER_BYTES, used when ours is unset (its tests set 0: rounds are
#: then the smallest, 4096 bytes)
DIST_BUFFER_MIN_BYTESIZE = Setting(
    PREFIX + "DIST_BUFFER_MIN_BYTESIZE",
    64 << 20,
    size_at_least(0),
    "upstream's DIST_BUFFER_BYTES",
    upstream="same",
)

# ---- the plugins' ---------------------------------------------------------------------------


#: the shared HTTP layer's options: variable suffix -> (option, lowest, highest, meaning); the
#: tests check the bounds against ObjectClient::SetHttpOption's (cpp/common/http)
HTTP_OPTIONS = {
    "CONNECT_TIMEOUT_MS": ("connect_timeout_ms", 1, 600_000, "connect timeout"),
    "LOW_SPEED_BYTES": ("low_speed_bytes", 0, 2**31 - 1, "bytes/s below which it stalls"),
    "LOW_SPEED_SECONDS": ("low_speed_seconds", 1, 3600, "seconds of stall before a cut"),
    "MAX_ATTEMPTS": ("max_attempts", 1, 100, "attempts of a request"),
    "RETRY_BASE_MS": ("retry_base_ms", 0, 600_000, "first backoff"),
    "RETRY_CAP_MS": ("retry_cap_ms", 0, 600_000, "longest backoff"),
}


def _http(prefix: str, reader: str) -> dict[str, Setting[int | None]]:
    """The shared HTTP layer's variables of one plugin, by option name."""
    return {
        option: Setting(prefix + suffix, None, integer(low, high), meaning, reader)
        for suffix, (option, low, high, meaning) in HTTP_OPTIONS.items()
    }


S3_ENDPOINT = Setting(PREFIX + "S3_ENDPOINT", "", text, "S3 endpoint", "s3")
S3_USE_VIRTUAL_ADDRESSING: Setting[bool | None] = Setting(
    PREFIX + "S3_USE_VIRTUAL_ADDRESSING", None, flag, "bucket in the host name", "s3"
)
S3_UNSIGNED = Setting(PREFIX + "S3_UNSIGNED", False, flag, "1: unsigned requests", "s3")
S3_MAX_RETRIES: Setting[int | None] = Setting(
    PREFIX + "S3_MAX_RETRIES",
    None,
    integer(0, 99),
    "upstream's retries after the first attempt",
    "s3",
    "same",
)
OVERRIDE_ENDPOINT_URL: Setting[bool | None] = Setting(
    PREFIX + "OVERRIDE_ENDPOINT_URL",
    None,
    flag,
    "0: the endpoint variables are not used",
    "s3",
    "same",
)
S3_HTTP = _http(PREFIX + "S3_", "s3")

GCS_ENDPOINT = Setting(PREFIX + "GCS_ENDPOINT", "", text, "GCS endpoint", "gcs")
#: unset: anonymous towards an emulator unless credentials are named
GCS_USE_ANONYMOUS_CREDENTIALS: Setting[bool | None] = Setting(
    PREFIX + "GCS_USE_ANONYMOUS_CREDENTIALS", None, flag, "1: no credentials", "gcs"
)
GCS_CREDENTIAL_FILE = Setting(
    PREFIX + "GCS_CREDENTIAL_FILE", "", text, "service account or ADC file", "gcs"
)
GCS_HMAC_ACCESS_ID = Setting(PREFIX + "GCS_HMAC_ACCESS_ID", "", text, "HMAC key id", "gcs")
GCS_HMAC_SECRET = Setting(PREFIX + "GCS_HMAC_SECRET", "", text, "HMAC secret", "gcs")
GCS_LIST_PAGE_SIZE: Setting[int | None] = Setting(
    PREFIX + "GCS_LIST_PAGE_SIZE", None, integer(1, 1000), "objects per listing page", "gcs"
)
GCS_HTTP = _http(PREFIX + "GCS_", "gcs")

AZURE_BLOB_ENDPOINT = Setting(PREFIX + "AZURE_BLOB_ENDPOINT", "", text, "Blob endpoint", "azure")
AZURE_USE_ANONYMOUS_CREDENTIALS = Setting(
    PREFIX + "AZURE_USE_ANONYMOUS_CREDENTIALS", False, flag, "1: no credentials", "azure"
)
AZURE_LIST_PAGE_SIZE: Setting[int | None] = Setting(
    PREFIX + "AZURE_LIST_PAGE_SIZE", None, integer(1, 5000), "blobs per listing page", "azure"
)
AZURE_HTTP = _http(PREFIX + "AZURE_", "azure")

HF_HTTP = _http(PREFIX + "HF_", "hf")

TESTFS_ROOT = Setting(PREFIX + "TESTFS_ROOT", "", text, "directory served as testfs://", "testfs")
TESTFS_READ_LOG = Setting(PREFIX + "TESTFS_READ_LOG", "", text, "log of reads served", "testfs")
TESTFS_FAIL_AFTER_BYTES = Setting(
    PREFIX + "TESTFS_FAIL_AFTER_BYTES", "", text, "fail reads after so many bytes", "testfs"
)

#: every setting, by variable name
ALL: dict[str, Setting[object]] = {
    s.name: s
    for s in [value for value in list(globals().values()) if isinstance(value, Setting)]
    + [s for http in (S3_HTTP, GCS_HTTP, AZURE_HTTP, HF_HTTP) for s in http.values()]
}
