"""Test backend plugin of runai-model-streamer: ``testfs://<path>`` from a local directory.

Found by the core through the ``runai_model_streamer.backends`` entry point named ``testfs``.
The native library ``libstreamer_testfs`` lives in this package; the directory served is
``$RUNAI_STREAMER_TESTFS_ROOT``.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
from typing import Any

from runai_model_streamer.backend_support import settings

ROOT_ENV_VAR = settings.TESTFS_ROOT.name
#: a file to which every read served appends "<offset> <size> <uri>" (tests count bytes read)
READ_LOG_ENV_VAR = settings.TESTFS_READ_LOG.name
#: after this many bytes served, every read fails (a storage that breaks mid-stream)
FAIL_AFTER_ENV_VAR = settings.TESTFS_FAIL_AFTER_BYTES.name
LIBRARY_NAME = "libstreamer_testfs.dylib" if sys.platform == "darwin" else "libstreamer_testfs.so"


def library_path() -> str:
    """Absolute path of libstreamer_testfs inside this package."""
    path = os.path.abspath(str(importlib.resources.files(__name__) / LIBRARY_NAME))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: the runai-model-streamer-testfs installation is incomplete "
            "(its native library is missing); reinstall the package"
        )
    return path


def backend_options(credentials: Any = None) -> dict[str, str]:
    """Options for the engine: the directory served, from $RUNAI_STREAMER_TESTFS_ROOT, and for
    tests a read log ($RUNAI_STREAMER_TESTFS_READ_LOG) and a failure after so many bytes
    ($RUNAI_STREAMER_TESTFS_FAIL_AFTER_BYTES)."""
    del credentials  # a local directory needs none
    root = settings.TESTFS_ROOT.read()
    if not root:
        raise RuntimeError(
            f"{ROOT_ENV_VAR} is not set: the testfs backend serves testfs://<path> from the "
            f"directory it names; set it to an existing directory"
        )
    if not os.path.isdir(root):
        raise RuntimeError(f"{ROOT_ENV_VAR}={root} is not a directory")
    options = {"root": os.path.abspath(root)}
    read_log = settings.TESTFS_READ_LOG.read()
    if read_log:
        options["read_log"] = read_log
    fail_after = settings.TESTFS_FAIL_AFTER_BYTES.read()
    if fail_after:
        options["fail_after_bytes"] = fail_after
    return options
