"""The s3:// plugin's region and credentials: read from the environment without botocore where
botocore would find them there, and always what botocore finds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KEYS = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s1"}
#: case: (its AWS variables, whether botocore must be asked)
ENVIRONMENTS: dict[str, tuple[dict[str, str], bool]] = {
    "keys": (KEYS, False),
    "keys, session token": ({**KEYS, "AWS_SESSION_TOKEN": "t1"}, False),
    "keys, both tokens": ({**KEYS, "AWS_SECURITY_TOKEN": "old", "AWS_SESSION_TOKEN": "t1"}, False),
    "keys, region": ({**KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, False),
    "keys, empty region": ({**KEYS, "AWS_DEFAULT_REGION": ""}, False),
    "keys, region in the config file": ({**KEYS, "AWS_CONFIG_FILE": "{config}"}, True),
    "keys, a named profile's region": (
        {**KEYS, "AWS_CONFIG_FILE": "{config}", "AWS_PROFILE": "other"},
        True,
    ),
    "keys in the credentials file": (
        {"AWS_CONFIG_FILE": "{config}", "AWS_SHARED_CREDENTIALS_FILE": "{credentials}"},
        True,
    ),
    "keys, expiring": ({**KEYS, "AWS_CREDENTIAL_EXPIRATION": "2999-01-01T00:00:00Z"}, True),
}

#: prints the plugin's options, what botocore finds, and whether the plugin imported botocore
PROBE = """
import json, sys
from runai_model_streamer_s3 import backend_options
options = backend_options()
imported = "botocore" in sys.modules
import botocore.session
session = botocore.session.get_session()
found = session.get_credentials().get_frozen_credentials()
print(json.dumps({
    "options": [options[k] for k in ("access_key_id", "secret_access_key", "session_token",
                                     "region")],
    "botocore": [found.access_key, found.secret_key, found.token or "",
                 session.get_config_variable("region") or "us-east-1"],
    "imported": imported,
}))
"""


@pytest.mark.parametrize("case", sorted(ENVIRONMENTS))
def test_region_and_credentials_are_what_botocore_finds(tmp_path: Path, case: str) -> None:
    variables, needs_botocore = ENVIRONMENTS[case]
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-south-1\n[profile other]\nregion = sa-east-1\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIA2\naws_secret_access_key = s2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "absent"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "absent"),
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(tmp_path),
    )
    for name, value in variables.items():
        env[name] = value.format(config=config, credentials=credentials)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False
    )
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)
    assert got["options"] == got["botocore"], case
    # botocore (170 ms to import) only where the environment alone does not say
    assert got["imported"] == needs_botocore, case
