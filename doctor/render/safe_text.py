"""Text from untrusted places (a snapshot's strings, a server's status line, a tool's
output, a file name) made harmless for a terminal.

Control characters can retitle a window, clear the screen or write the clipboard (OSC 52);
C1 controls (U+0080-U+009F) act as escape sequences in some terminals; bidirectional
overrides make text read differently than it is. Each is shown as a visible ``\\uXXXX``
instead, which is also a valid escape inside a JSON string. Newlines and tabs stay.
"""

from __future__ import annotations

_CODES = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
          *range(0x2066, 0x206A)]
_TABLE = {code: f"\\u{code:04x}" for code in _CODES if code not in (0x09, 0x0A)}


def neutralise(text: str) -> str:
    """``text`` with every control character shown as ``\\uXXXX``; linear in its length."""
    return text.translate(_TABLE)
