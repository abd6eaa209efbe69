"""S3Credentials: explicit credentials for S3 and S3-compatible stores.

Exported by the package and, as upstream has it, by ``runai_model_streamer.s3_utils.s3_utils``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["S3Credentials"]


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
