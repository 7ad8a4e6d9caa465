"""Credentials and region from the AWS config files, for the S3 backend.

obstore reads the AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, web identity,
container and instance credentials) but not the shared files that ``aws configure``,
``aws sso login`` and most teams use: ``~/.aws/credentials`` and ``~/.aws/config``
(or ``AWS_SHARED_CREDENTIALS_FILE`` / ``AWS_CONFIG_FILE``), with ``AWS_PROFILE``. For
those, botocore's own resolver runs (profiles, ``source_profile`` role chains,
``credential_process``, SSO), handed to obstore through its boto3 credential provider,
which refreshes them before they expire.

Keys in the environment win, as in every AWS SDK; botocore is imported only when a
config file or a profile is actually there, so an S3 keep configured by the environment
pays nothing for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StorageError

__all__ = ["ProfileSettings", "profile_settings"]


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    credential_provider: Any | None
    """An obstore credential provider, or None to let obstore read the environment."""
    region: str | None
    """The profile's region, when neither the caller nor the environment names one."""


_NOTHING = ProfileSettings(None, None)


def _config_files() -> list[Path]:
    home = Path.home() / ".aws"
    return [
        Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / "credentials"),
        Path(os.environ.get("AWS_CONFIG_FILE") or home / "config"),
    ]


def profile_settings() -> ProfileSettings:
    """What the AWS config files say, where the environment leaves it open."""
    region_in_env = bool(os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    keys_in_env = bool(os.environ.get("AWS_ACCESS_KEY_ID"))
    if keys_in_env and region_in_env:
        return _NOTHING
    if not os.environ.get("AWS_PROFILE") and not any(p.is_file() for p in _config_files()):
        return _NOTHING
    import boto3
    import botocore.exceptions

    try:
        session = boto3.Session()
        region = None if region_in_env else session.region_name
        if keys_in_env:
            return ProfileSettings(None, region)
        credentials = session.get_credentials()
    except botocore.exceptions.ProfileNotFound as exc:
        raise StorageError(f"S3: {exc}; set AWS_PROFILE to a profile of the config files") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise StorageError(f"S3: cannot read the AWS config files: {exc}") from exc
    if credentials is None:
        return ProfileSettings(None, region)
    from obstore.auth.boto3 import Boto3CredentialProvider

    return ProfileSettings(Boto3CredentialProvider(session), region)
