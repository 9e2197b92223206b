"""The Hugging Face endpoint: its default, and the one way llmdoctor reads an ``HF_ENDPOINT``.

huggingface_hub reads ``HF_ENDPOINT`` once, at import, and (since v0.28.0) strips trailing
slashes: ``ENDPOINT = os.getenv("HF_ENDPOINT", "https://huggingface.co").rstrip("/")``
(https://github.com/huggingface/huggingface_hub/blob/v0.28.0/src/huggingface_hub/constants.py,
PR https://github.com/huggingface/huggingface_hub/pull/2721). It does not strip spaces or
quotes, which users paste in from ``setx`` or ``.env`` files; what they *meant* is the value
without them.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["DEFAULT_ENDPOINT", "effective_endpoint", "intended_endpoint", "is_http_url"]

DEFAULT_ENDPOINT = "https://huggingface.co"


def effective_endpoint(value: Optional[str]) -> str:
    """The endpoint huggingface_hub (0.28+) uses for this ``HF_ENDPOINT`` (None or '' when unset)."""
    return (value or DEFAULT_ENDPOINT).rstrip("/")


def intended_endpoint(value: Optional[str]) -> str:
    """What the user meant: surrounding spaces and quotes and trailing slashes removed."""
    return (value or DEFAULT_ENDPOINT).strip().strip("'\"").strip().rstrip("/") or DEFAULT_ENDPOINT


def is_http_url(value: str) -> bool:
    """An http(s) URL with a host: the only kind of endpoint huggingface_hub can use."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
