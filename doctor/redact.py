"""Keeping secrets inside the process.

Layers, applied to facts before they are stored and to every rendered output:
environment variables whose names look secret; assignments to such names wherever they
appear (``export AWS_SECRET_ACCESS_KEY=...`` on a startup-file line); the userinfo of every
URL, whole (``https://TOKEN:x-oauth-basic@host``, a password containing ``@``: RFC 3986
section 3.2.1 ends userinfo at the *last* ``@`` of the authority); the literal values of
every secret this process knows (secret-looking variables and Hugging Face token files),
wherever they appear; token-shaped strings (``hf_...``).

Every layer is linear in the length of the text: URLs are found from their ``://``, not by
a pattern tried at every position (which was quadratic on a long run of letters).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

REDACTED = "<redacted>"
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# assignments to names that look secret, in the forms shells and env files use:
# NAME=value (any case), NAME: value (upper-case names, as in env and YAML files), and
# fish's set -gx NAME value
_KEYWORDS = "TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH"
_VALUE = r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s;'\"&|]+)"
SECRET_ASSIGNMENT = re.compile(
    rf"\b(?P<name>(?:[A-Za-z_][A-Za-z0-9_]*?)?(?:{_KEYWORDS})[A-Za-z0-9_]*)(?P<sep>\s*=\s*){_VALUE}", re.IGNORECASE)
SECRET_ENTRY = re.compile(rf"\b(?P<name>(?:[A-Z_][A-Z0-9_]*?)?(?:{_KEYWORDS})[A-Z0-9_]*)(?P<sep>:[ \t]*){_VALUE}")
SECRET_FISH_SET = re.compile(
    rf"\bset(?P<name>(?:\s+-[A-Za-z]+)*\s+(?:[A-Za-z_][A-Za-z0-9_]*?)?(?i:{_KEYWORDS})[A-Za-z0-9_]*)"
    rf"(?P<sep>\s+){_VALUE}")
_PLAIN_VALUES = {"true", "false", "none", "null", "yes", "no", "0", "1"}
_AUTHORITY_END = "/?#\\ \t\r\n'\"<>`"
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
        for userinfo in url_userinfos(value or ""):
            for secret in (userinfo, userinfo.split(":", 1)[-1]):
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
        value = mask_userinfo(value)
        if "=" in value:
            value = SECRET_ASSIGNMENT.sub(_mask_assignment, value)
        if ":" in value:
            value = SECRET_ENTRY.sub(_mask_assignment, value)
        if "set" in value:
            value = SECRET_FISH_SET.sub(_mask_assignment, value)
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


def _authorities(text: str):
    """(start, end) of the authority after each ``://`` in ``text``: one pass, linear."""
    position = text.find("://")
    while position != -1:
        start = position + 3
        end = start
        while end < len(text) and text[end] not in _AUTHORITY_END:
            end += 1
        if position > 0 and (text[position - 1].isalnum() or text[position - 1] in "+.-"):
            yield start, end
        position = text.find("://", end if end > start else start)


def url_userinfos(text: str) -> list:
    """The userinfo of every URL in ``text`` (what stands before the authority's last ``@``)."""
    found = []
    for start, end in _authorities(text):
        at = text.rfind("@", start, end)
        if at > start:
            found.append(text[start:at])
    return found


def mask_userinfo(text: str) -> str:
    """Every URL's userinfo, user and password alike, replaced by the placeholder."""
    if "://" not in text or "@" not in text:
        return text
    pieces, last = [], 0
    for start, end in _authorities(text):
        at = text.rfind("@", start, end)
        if at > start and text[start:at] != REDACTED:
            pieces.append(text[last:start])
            pieces.append(REDACTED)
            last = at
    pieces.append(text[last:])
    return "".join(pieces)


def _mask_assignment(match: re.Match) -> str:
    value = match.group("value")
    bare = value.strip("\"'")
    if REDACTED in value or not bare or bare.startswith("$") or bare.lower() in _PLAIN_VALUES \
            or _is_harmless_key(match.group("name").split()[-1]):
        return match.group(0)  # masked already, empty, a reference to another variable, a flag
    quote = value[0] if value[0] in "\"'" else ""
    prefix = "set" if match.re is SECRET_FISH_SET else ""
    return f"{prefix}{match.group('name')}{match.group('sep')}{quote}{REDACTED}{quote}"


def home_scrubber(environ: Optional[dict] = None):
    """A function that replaces this user's home folder (and any ``/home/NAME``,
    ``/Users/NAME`` or ``C:\\Users\\NAME`` prefix) with ``~``: for what leaves the machine."""
    environ = os.environ if environ is None else environ
    home = (environ.get("HOME") or environ.get("USERPROFILE") or "").rstrip("/\\")
    pattern = re.compile(r"(?:/home/|/Users/|[A-Za-z]:\\Users\\)[^/\\\s\"']+")

    def scrub(text: str) -> str:
        if home and len(home) > 1:
            text = text.replace(home, "~")
        return pattern.sub("~", text)

    return scrub


SHARE_NOTE = ("scrubbed for sharing: GPU UUIDs and serial numbers, the host name, the user name and home "
              "folders (as ~) are replaced; secrets are redacted as always")
_IDENTIFYING_KEYS = {"uuid", "serial", "serial_number", "board_id", "pci_bus_id"}


def share_scrubber(environ: Optional[dict] = None, host: Optional[str] = None, user: Optional[str] = None):
    """A function that removes what identifies a machine or a person from text: GPU UUIDs,
    the host name, the user name and home folders. For ``collect --share`` and the markdown
    report, which are pasted into public bug trackers."""
    import getpass
    import socket

    environ = os.environ if environ is None else environ
    home = home_scrubber(environ)
    try:
        user = user or environ.get("USER") or environ.get("USERNAME") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name to know of
        user = user or ""
    host = host or socket.gethostname()
    names = sorted({h for h in (host, host.split(".")[0]) if h and len(h) > 2}, key=len, reverse=True)
    uuid = re.compile(r"\b(?:GPU|MIG)-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
    word = re.compile(rf"(?<![A-Za-z0-9_.-])({'|'.join(re.escape(n) for n in names)})(?![A-Za-z0-9_-])") \
        if names else None
    user_word = re.compile(rf"(?<![A-Za-z0-9_.-]){re.escape(user)}(?![A-Za-z0-9_-])") \
        if user and len(user) > 2 and user not in ("root", "user", "admin") else None

    def scrub(text: str) -> str:
        text = uuid.sub("GPU-<uuid>", home(text))
        if word is not None:
            text = word.sub("<host>", text)
        if user_word is not None:
            text = user_word.sub("<user>", text)
        return text

    return scrub


def scrub_for_sharing(value: Any, scrub) -> Any:
    """``value`` (facts, a snapshot) with every string scrubbed and identifying keys dropped."""
    if isinstance(value, dict):
        return {scrub(k) if isinstance(k, str) else k: scrub_for_sharing(v, scrub) for k, v in value.items()
                if not (isinstance(k, str) and k.lower() in _IDENTIFYING_KEYS)}
    if isinstance(value, list):
        return [scrub_for_sharing(v, scrub) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value
