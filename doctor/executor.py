"""The fix executor: the only code besides probes that changes the machine.

A plain loop over actions (each knows how to check, apply and reverse itself; see
``llmdoctor.actions``):

- ``preflight`` gathers every action's problems before the first change, so a fix that needs
  administrator rights says so and never stops half way;
- ``apply`` journals each action's prepared state (its before-state and what undo needs) ahead
  of running it, and rolls back what it did if a later action fails;
- ``undo`` first asks every action of a record whether it can still be reversed; if one cannot
  (its region changed since), nothing of that record is touched and the diffs are returned.
  Otherwise each is reversed, newest first, against the live file or value.
"""

from __future__ import annotations

from typing import Optional

from llmdoctor.actions import ActionEnv, ActionError, action_from_json
from llmdoctor.journal import JournalRecord


class FixError(Exception):
    """A fix could not be applied (and what it did was rolled back)."""


class UndoRefused(Exception):
    """Part of a record can no longer be reversed; nothing of it was changed."""

    def __init__(self, problems: list) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Executor:
    def __init__(self, registry=None, is_admin: bool = False) -> None:
        self.env = ActionEnv(registry=registry, is_admin=is_admin)

    @property
    def registry(self):
        return self.env.registry

    def preflight(self, actions: list) -> list:
        """Problems that would stop the plan, found before anything changes."""
        return [problem for action in actions for problem in action.preflight(self.env)]

    def effective(self, actions: list) -> list:
        """The actions that would change something; a fix re-run on a healthy machine has none.
        Actions that only follow changes (a broadcast) are kept only when something changes."""
        changing = [a for a in actions if not getattr(a, "follows_changes", False) and a.would_change(self.env)]
        if not changing:
            return []
        return [a for a in actions if a in changing or getattr(a, "follows_changes", False)]

    def apply(self, actions: list, record: JournalRecord) -> None:
        for action in actions:
            try:
                state = action.prepare(self.env)
            except ActionError as exc:
                self._fail(record, action, exc)
            entry = record.begin(action.to_json(), {k: v for k, v in state.items() if not k.startswith("_")})
            try:
                after = action.apply(self.env, state)
            except Exception as exc:
                self._fail(record, action, exc)
            record.finish(entry, after)
        record.set_status("applied")

    def _fail(self, record: JournalRecord, action, exc: Exception) -> None:
        record.set_status("failed", f"{action.describe()}: {exc}")
        try:
            self.undo(record)
            rolled = "everything it had changed was restored"
        except UndoRefused as refused:  # pragma: no cover - only if someone edits during the fix
            rolled = f"restoring failed too ({refused}); see {record.path}"
        raise FixError(f"{action.describe()} failed: {exc}; {rolled}") from None

    # ------------------------------------------------------------------ undo

    def _open_entries(self, record: JournalRecord) -> list:
        return [(entry, action_from_json(entry["action"])) for entry in reversed(record.entries)
                if entry.get("state") != "undone"]

    def undo_problems(self, record: JournalRecord) -> list:
        """Why (part of) the record cannot be reversed now; empty when all of it can."""
        if record.data.get("version", 1) < 2 and record.entries:
            return [f"{record.id} was written by an older llmdoctor whose undo restored whole files; restore "
                    f"by hand from the NAME.llmdoctor-backup files or the before-states in {record.path}"]
        problems = []
        for entry, action in self._open_entries(record):
            problem = action.reverse_problem(self.env, entry.get("data") or {})
            if problem:
                problems.append(f"{action.describe()}: {problem}")
        return problems

    def undo(self, record: JournalRecord) -> list:
        """Reverse every entry that ran or may have run (pending ones too), newest first.
        Returns notes; raises :class:`UndoRefused` (changing nothing) when part of it cannot."""
        problems = self.undo_problems(record)
        if problems:
            raise UndoRefused(problems)
        notes = []
        for entry, action in self._open_entries(record):
            try:
                note = action.reverse(self.env, entry.get("data") or {})
            except ActionError as exc:
                note = f"{action.describe()}: {exc}"
            if note:
                notes.append(note)
            entry["state"] = "undone"
            record.save()
        record.set_status("undone")
        return notes


def undo_note_is_problem(note: str) -> bool:
    return not note.startswith("note: ")


def describe_entry(entry: dict) -> Optional[str]:
    try:
        return action_from_json(entry["action"]).describe()
    except (ActionError, KeyError, TypeError):
        return None
