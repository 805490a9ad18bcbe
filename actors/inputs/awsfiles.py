"""The AWS shared credentials and config files: one profile's keys and region, read as the AWS SDKs read them.

obstore reads the AWS variables and web identity itself, but not ``~/.aws/credentials`` or ``~/.aws/config``; this
fills that gap with the SDKs' rules: variables first (``AWS_ACCESS_KEY_ID`` set means the files are not read for
keys, ``AWS_REGION`` set means not for the region), the profile from ``AWS_PROFILE`` (else ``default``), the files
from ``AWS_SHARED_CREDENTIALS_FILE`` and ``AWS_CONFIG_FILE`` (else under ``~/.aws``). Values are never logged or
echoed: a refusal names the file and the profile only.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

from ..core.errors import InputError

_KEYS = {"aws_access_key_id": "access_key_id", "aws_secret_access_key": "secret_access_key",
         "aws_session_token": "session_token"}


def profile_config(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """The obstore S3 config entries (``access_key_id``, ``secret_access_key``, ``session_token``, ``region``) the
    shared files give the profile, for what the variables leave unset; {} when there is nothing to add. A profile
    named in AWS_PROFILE that neither file has, or a file that cannot be parsed, is an InputError."""
    named = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or ""
    profile = named or "default"
    credentials = _read(Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"))
    config = _read(Path(environ.get("AWS_CONFIG_FILE") or home / ".aws" / "config"))
    # The config file names its sections "profile NAME", except the default one; the credentials file plain "NAME".
    config_section = profile if profile == "default" else f"profile {profile}"
    found = [parser[section] for parser, section in ((credentials, profile), (config, config_section))
             if parser.has_section(section)]
    if named and not found:
        raise InputError(f"AWS_PROFILE {named[:100]!r} is in neither the shared credentials nor the config file")
    out: dict[str, str] = {}
    if not environ.get("AWS_ACCESS_KEY_ID"):
        for section in found:  # the credentials file first: it wins where both have a key
            for name, key in _KEYS.items():
                if name in section and key not in out:
                    out[key] = section[name]
        if ("access_key_id" in out) != ("secret_access_key" in out):
            raise InputError(f"the AWS profile {profile[:100]!r} has only one of aws_access_key_id and "
                             "aws_secret_access_key")
    if not (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")):
        for section in reversed(found):  # the region lives in the config file
            if section.get("region"):
                out["region"] = section["region"]
                break
    return out


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as file:
            parser.read_file(file)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError, configparser.Error) as error:
        # The parser's message may quote a line, and a line may hold a key: only the file and the kind of fault.
        raise InputError(f"the AWS file {str(path)[:200]} cannot be read ({type(error).__name__})") from None
    return parser
