"""Object-storage credentials and URI helpers.

``from runai_model_streamer.s3_utils.s3_utils import S3Credentials`` is the import path callers
(vLLM, SGLang) use; keep it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["S3Credentials", "is_azure_path", "is_gs_path", "is_object_storage_path", "is_s3_path"]


@dataclass
class S3Credentials:
    """Explicit credentials for S3 and S3-compatible stores (every field optional).

    Fields left as None are discovered by the plugin (environment, profile, instance role...).
    """

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region_name: str | None = None
    endpoint: str | None = None

    def __repr__(self) -> str:
        def hidden(value: str | None) -> str:
            return "None" if value is None else "'***'"

        return (
            f"S3Credentials(access_key_id={self.access_key_id!r}, "
            f"secret_access_key={hidden(self.secret_access_key)}, "
            f"session_token={hidden(self.session_token)}, region_name={self.region_name!r}, "
            f"endpoint={self.endpoint!r})"
        )


def is_s3_path(path: str) -> bool:
    return path.lower().startswith("s3://")


def is_gs_path(path: str) -> bool:
    return path.lower().startswith("gs://")


def is_azure_path(path: str) -> bool:
    return path.lower().startswith("az://")


def is_object_storage_path(path: str) -> bool:
    return is_s3_path(path) or is_gs_path(path) or is_azure_path(path)
