"""Installing a program with a package manager, as an action that knows exactly what it added.

A system package manager (apt-get, dnf, pacman, zypper, Chocolatey) changes the whole
machine: such an install is scope ``machine`` and needs administrator rights, whoever runs
it. The user's own managers (Homebrew, Scoop, ``winget --scope user``, conda into an env the
user owns) are scope ``user``.

The install lists the installed packages before and after, and journals the difference:
undo removes exactly the packages the install added and nothing else. Packages it upgraded
cannot be downgraded reliably (the old version is usually gone from the archive); the
journal and the undo say which stay upgraded. For apt-get, undo first simulates the removal
(``apt-get -s purge``) and refuses when it would take anything else with it, such as a
package installed since that depends on what the fix added.

References: apt-get(8) and dpkg-query(1) (``${db:Status-Abbrev}``: ``ii`` is installed),
https://manpages.debian.org/bookworm/apt/apt-get.8.en.html,
https://manpages.debian.org/bookworm/dpkg/dpkg-query.1.en.html.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from typing import Optional

from llmdoctor.actions import Action, ActionEnv, ActionError, ps_quote

NONINTERACTIVE = {"DEBIAN_FRONTEND": "noninteractive"}


@dataclass(frozen=True)
class Manager:
    install: tuple
    remove: tuple
    listing: Optional[tuple]  # argv printing "name<TAB>version" per installed package
    system: bool  # changes the whole machine and needs administrator rights


MANAGERS = {
    "apt-get": Manager(("apt-get", "install", "-y", "--no-install-recommends"), ("apt-get", "purge", "-y"),
                       ("dpkg-query", "-W", "-f", "${binary:Package}\t${Version}\t${db:Status-Abbrev}\n"), True),
    "dnf": Manager(("dnf", "install", "-y"), ("dnf", "remove", "-y", "--noautoremove"),
                   ("rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"), True),
    "zypper": Manager(("zypper", "--non-interactive", "install"), ("zypper", "--non-interactive", "remove"),
                      ("rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"), True),
    "pacman": Manager(("pacman", "-S", "--noconfirm", "--needed"), ("pacman", "-R", "--noconfirm"),
                      ("pacman", "-Q"), True),
    "choco": Manager(("choco", "install", "-y"), ("choco", "uninstall", "-y"), None, True),
    "brew": Manager(("brew", "install"), ("brew", "uninstall"), ("brew", "list", "--formula", "--versions"), False),
    "scoop": Manager(("scoop", "install"), ("scoop", "uninstall"), None, False),
    "winget": Manager(("winget", "install", "-e", "--scope", "user", "--accept-source-agreements",
                       "--accept-package-agreements", "--id"), ("winget", "uninstall", "-e", "--id"), None, False),
    "conda": Manager(("conda", "install", "-y", "-c", "conda-forge"), ("conda", "remove", "-y"), None, False),
}


def _parse_listing(text: str, with_status: bool) -> dict:
    """{name: version} from "name<TAB>version[<TAB>dpkg status]" lines; with a status column
    only packages whose status is installed ("ii"), not those with configuration left ("rc")."""
    installed = {}
    for line in text.splitlines():
        parts = line.replace("\t", " ").split()
        if not parts or (with_status and (len(parts) < 3 or parts[2] != "ii")):
            continue
        installed[parts[0].split(":")[0]] = parts[1] if len(parts) > 1 else ""
    return installed


@dataclass(frozen=True)
class PackageInstall(Action):
    """``MANAGER install PACKAGES``, journaled with the packages it newly added."""

    manager: str
    packages: tuple
    prefix: Optional[str] = None  # conda: the environment to install into
    description: str = ""
    kind: str = field(default="package-install", init=False)

    def __post_init__(self) -> None:
        if self.manager not in MANAGERS:
            raise ActionError(f"unknown package manager {self.manager!r}")

    @property
    def _spec(self) -> Manager:
        return MANAGERS[self.manager]

    @property
    def scope(self) -> str:
        return "machine" if self._spec.system else "user"

    @property
    def needs_admin(self) -> bool:
        return self._spec.system

    def _prefix_args(self) -> list:
        return ["-p", self.prefix] if self.manager == "conda" and self.prefix else []

    def argv(self) -> list:
        return [*self._spec.install, *self._prefix_args(), *self.packages]

    def remove_argv(self, names: list) -> list:
        return [*self._spec.remove, *self._prefix_args(), *names]

    def describe(self) -> str:
        return self.description or f"install {' '.join(self.packages)} with {self.manager}"

    def bash(self) -> list:
        command = " ".join(shlex.quote(a) for a in self.argv())
        if self.needs_admin:
            return ["# a system package manager: as root (or prefix sudo)", command]
        return [command]

    def powershell(self) -> list:
        return ["& " + " ".join(ps_quote(a) for a in self.argv())]

    def preflight(self, env: ActionEnv) -> list:
        problems = Action.preflight(self, env)
        from llmdoctor.proc import which

        if not which(self._spec.install[0]):
            problems.append(f"{self.describe()}: {self._spec.install[0]} is not on PATH")
        return problems

    # -------------------------------------------------------------- what is installed

    def _installed(self) -> Optional[dict]:
        from llmdoctor import proc

        if self.manager == "conda":
            result = proc.run(["conda", "list", "--json", *self._prefix_args()], timeout=120)
            try:
                return {p["name"]: p.get("version", "") for p in json.loads(result.stdout)}
            except (ValueError, TypeError, KeyError):
                return None
        if not self._spec.listing:
            return None
        result = proc.run(list(self._spec.listing), timeout=120)
        return _parse_listing(result.stdout, self.manager == "apt-get") if result.ok else None

    def prepare(self, env: ActionEnv) -> dict:
        return {"before": self._installed()}

    def apply(self, env: ActionEnv, state: dict) -> dict:
        from llmdoctor import proc

        result = proc.run(self.argv(), timeout=3600, env={**os.environ, **NONINTERACTIVE})
        if not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise ActionError(result.error or f"exit {result.returncode}: {' | '.join(tail)}")
        return self._changes(state.get("before"))

    def _changes(self, before: Optional[dict]) -> dict:
        after = self._installed()
        if before is None or after is None:
            return {"added": None, "upgraded": {}}
        added = sorted(set(after) - set(before))
        upgraded = {name: [before[name], after[name]] for name in sorted(set(after) & set(before))
                    if before[name] != after[name]}
        return {"added": added, "upgraded": upgraded}

    def _to_remove(self, state: dict) -> Optional[list]:
        """What the install added: journaled after it ran, else (killed in between) worked out
        now from the listing taken before it."""
        if state.get("added") is not None:
            return list(state["added"])
        if state.get("before") is not None:
            return self._changes(state["before"]).get("added")
        return None

    # -------------------------------------------------------------- undo

    def reverse_problem(self, env: ActionEnv, state: dict) -> Optional[str]:
        names = self._to_remove(state)
        if names is None:
            if self.manager in ("choco", "scoop", "winget"):
                return None  # these uninstall the one package they installed
            return (f"what '{self.describe()}' added was not recorded; remove it yourself with "
                    f"{' '.join(self.remove_argv(list(self.packages)))}")
        if not names:
            return None
        if self.needs_admin and not env.is_admin:
            return f"removing {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} needs administrator rights"
        if self.manager == "apt-get":
            from llmdoctor import proc

            simulated = proc.run(["apt-get", "-s", *self.remove_argv(names)[1:]], timeout=120)
            taken = {line.split()[1].split(":")[0] for line in simulated.stdout.splitlines()
                     if line.startswith(("Purg ", "Remv "))}
            extra = sorted(taken - set(names))
            if extra:
                return (f"removing what the install added would also remove {', '.join(extra[:8])}, installed "
                        "since and depending on it; remove the packages yourself when you no longer need them: "
                        + " ".join(self.remove_argv(names)))
        return None

    def reverse(self, env: ActionEnv, state: dict) -> str:
        names = self._to_remove(state)
        if names is None and self.manager in ("choco", "scoop", "winget"):
            names = list(self.packages)
        if not names:
            return ""
        from llmdoctor import proc

        result = proc.run(self.remove_argv(names), timeout=3600, env={**os.environ, **NONINTERACTIVE})
        if not result.ok:
            return f"removing {', '.join(names)} failed: {result.error or 'exit ' + str(result.returncode)}"
        upgraded = state.get("upgraded") or {}
        if upgraded:
            return ("note: the install also upgraded " + ", ".join(f"{n} {v[0]} -> {v[1]}" for n, v in upgraded.items())
                    + "; those stay upgraded")
        return ""
