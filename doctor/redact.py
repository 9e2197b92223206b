"""Keeping secrets inside the process.

Three layers, applied to facts before they are stored and to every rendered output:
environment variables whose names look secret, credentials inside URLs, and the literal
values of every secret this process knows (secret-looking variables and Hugging Face
token files), wherever they appear. Token-shaped strings (``hf_...``) are masked too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

REDACTED = "<redacted>"
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# scheme://user:password@host  or  scheme://token@host
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"]+)@")
TOKEN_SHAPES = re.compile(
    r"\b(hf_[A-Za-z0-9]{16,}|api_org_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|"
    r"sk-[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16})\b"
)
_MIN_SECRET_LENGTH = 6  # shorter values ("1", "yes") would blank out ordinary text


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def _hf_token_files(env: dict) -> list:
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface",
    )
    files = [env.get("HF_TOKEN_PATH") or os.path.join(home, "token"),
             os.path.join(home, "stored_tokens")]
    return [Path(f) for f in files]


def known_secrets(env: Optional[dict] = None) -> set:
    """The literal secret values this process can see; used only to scrub output."""
    env = dict(os.environ) if env is None else env
    secrets = set()
    for name, value in env.items():
        if is_secret_name(name) and value and len(value) >= _MIN_SECRET_LENGTH:
            secrets.add(value)
        for match in URL_CREDENTIALS.finditer(value or ""):
            userinfo = match.group("userinfo")
            secret = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
            if len(secret) >= _MIN_SECRET_LENGTH:
                secrets.add(secret)
    for path in _hf_token_files(env):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")[:100_000]
        except OSError:
            continue
        for line in text.splitlines():
            # 'token' holds the token; 'stored_tokens' is an INI file of name = token
            value = line.split("=", 1)[1] if "=" in line else line
            value = value.strip()
            if len(value) >= _MIN_SECRET_LENGTH:
                secrets.add(value)
    return secrets


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret that contains another is replaced whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @classmethod
    def from_environment(cls, env: Optional[dict] = None) -> Redactor:
        return cls(known_secrets(env))

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = URL_CREDENTIALS.sub(_mask_userinfo, value)
        return TOKEN_SHAPES.sub(REDACTED, value)

    def env(self, env: dict) -> dict:
        return {k: (REDACTED if is_secret_name(k) and v else self.text(v)) for k, v in env.items()}

    def obj(self, value: Any, key: str = "") -> Any:
        """Redact a JSON-able structure; dict keys that look secret lose their values."""
        if isinstance(value, dict):
            return {k: self.obj(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.obj(v, key) for v in value]
        if isinstance(value, tuple):
            return [self.obj(v, key) for v in value]
        if isinstance(value, str):
            if key and is_secret_name(key) and value and not _is_harmless_key(key):
                return REDACTED
            return self.text(value)
        return value


def _is_harmless_key(key: str) -> bool:
    # fact keys such as "keys" or "token_file_exists" describe, they do not hold, secrets
    return key.lower().endswith(("_exists", "_present", "_set", "_path", "_file")) or key in (
        "keys",
    )


def _mask_userinfo(match: re.Match) -> str:
    userinfo = match.group("userinfo")
    if REDACTED in userinfo:
        return match.group(0)
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        return f"{match.group('scheme')}{user}:{REDACTED}@"
    return f"{match.group('scheme')}{REDACTED}@"
