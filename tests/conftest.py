"""Shared pytest configuration: bounded hypothesis profiles (fast enough for 2 shared cores)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# No test may send traffic off this machine: botocore's credential chain must never ask the
# instance metadata service (a link-local address) for credentials.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
