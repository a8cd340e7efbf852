"""Hot reload: notice changed macro and policy files, load and lint the whole set, swap it in.

The check compares a fingerprint (name, mtime, size of every macro file, snippet and the
policy file); only a changed fingerprint costs a reload. A set with errors is never swapped
in: the last good one stays in use and the errors are logged once, with file and line.

Thread safety: a reload runs under a lock (one at a time); the state readers see is one
immutable object replaced by a single assignment, so readers never wait for a reload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailbot.respond.catalog import MacroSet
from mailbot.respond.findings import Finding, SortsFindings
from mailbot.respond.lint import LintResult, load_set, macro_files, snippet_files

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(macros_dir: Path, policy_file: Path) -> Fingerprint:
    entries = []
    for path in (*macro_files(macros_dir), *snippet_files(macros_dir), policy_file):
        try:
            st = path.stat()
        except OSError:
            entries.append((str(path), -1, -1))   # missing: a change when it appears
            continue
        entries.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(entries)


@dataclass(frozen=True)
class LoadState(SortsFindings):
    active: MacroSet | None                 # the set in use (None: no good set yet)
    findings: tuple[Finding, ...] = ()      # of the latest check of the files
    checked_at: datetime | None = None
    fingerprint: Fingerprint | None = None


class Reloader:
    def __init__(self, macros_dir: Path, policy_file: Path, *, min_interval: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.macros_dir = macros_dir
        self.policy_file = policy_file
        self._min_interval = min_interval
        self._monotonic = monotonic
        self._clock = clock
        self._lock = threading.Lock()
        self._state = LoadState(None)
        self._last_check = float("-inf")

    @property
    def state(self) -> LoadState:
        return self._state

    def check(self) -> bool:
        """Reload if any file changed. True when a new set was swapped in. Never raises for
        bad files (they are reported in ``state`` and the log)."""
        with self._lock:
            return self._check_locked()

    def maybe_check(self) -> None:
        """``check`` at most every ``min_interval`` seconds, and never waiting for a reload
        another thread is doing (the caller goes on with the set in use)."""
        if self._monotonic() - self._last_check < self._min_interval:
            return
        if self._lock.acquire(blocking=False):
            try:
                self._check_locked()
            finally:
                self._lock.release()

    def _check_locked(self) -> bool:
        self._last_check = self._monotonic()
        current = fingerprint(self.macros_dir, self.policy_file)
        if current == self._state.fingerprint:
            return False
        now = self._clock()
        result = load_set(self.macros_dir, self.policy_file, now=now)
        previous = self._state.active
        active = result.macro_set or previous
        self._state = LoadState(active, result.findings, now, current)
        self._report(result, previous)
        return result.macro_set is not None

    def _report(self, result: LintResult, previous: MacroSet | None) -> None:
        where = f"{self.macros_dir} + {self.policy_file}"
        if result.macro_set is None:
            for finding in result.errors:
                log.error("macros: %s", finding)
            kept = (f"keeping the set loaded at {previous.loaded_at:%Y-%m-%d %H:%M:%S} UTC" if previous else
                    "no macro set is in use: every mail goes to an agent")
            log.error("macros: %s has %d error(s); %s", where, len(result.errors), kept)
            return
        for finding in result.warnings:
            log.warning("macros: %s", finding)
        # The first load is routine (every command loads the set); a reload is news.
        log.log(logging.INFO if previous is not None else logging.DEBUG,
                "macros: loaded %d macro(s) and the policy from %s (%d warning(s))",
                len(result.macro_set.macros), where, len(result.warnings))
