"""Shell startup files: the one list of the files a user's shells read, which ones llmdoctor
reads to trace a setting to its line, and the one it writes to for each shell.

Sources: bash reads ~/.bash_profile, ~/.bash_login or ~/.profile for login shells and ~/.bashrc
for interactive ones (https://www.gnu.org/software/bash/manual/html_node/Bash-Startup-Files.html);
zsh reads ~/.zshenv, ~/.zprofile and ~/.zshrc (https://zsh.sourceforge.io/Doc/Release/Files.html);
fish reads ~/.config/fish/config.fish (https://fishshell.com/docs/current/index.html#configuration).
"""

from __future__ import annotations

import os

__all__ = ["SYSTEM_STARTUP_FILES", "USER_STARTUP_FILES", "startup_file"]

# in the order a login bash, then zsh, then fish would read them
USER_STARTUP_FILES = (
    ".profile", ".bash_profile", ".bash_login", ".bashrc", ".zshenv", ".zprofile", ".zshrc",
    ".config/fish/config.fish",
)
# read (never written) to trace what the system adds; /etc/environment is pam_env's, not a script
SYSTEM_STARTUP_FILES = ("/etc/environment", "/etc/profile", "/etc/bash.bashrc", "/etc/zsh/zshenv")

# where a setting goes so that new terminals of that shell get it: the interactive file
_WRITTEN = {"bash": ".bashrc", "zsh": ".zshrc", "fish": ".config/fish/config.fish"}


def startup_file(shell: str, home: str) -> str:
    """The file llmdoctor writes for ``shell`` (a path such as /bin/zsh); ~/.profile for others."""
    return os.path.join(home, _WRITTEN.get(os.path.basename(shell or ""), ".profile"))
