"""Fixtures of the fault-injection tests: a rig per test, and its figures.

``make_rig()`` builds a deployment on this test's dovecot and aiosmtpd (SQLite unless a
database URL is given); ``via_tap=True`` puts an ``SmtpTap`` in front of aiosmtpd, and
``relay_files_copy=True`` makes that relay file a copy of what it accepts in Sent;
``imap_tap=True`` puts an ``ImapTap`` in front of dovecot. Every
daemon a rig started is killed at the end of the test, whatever happened.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.faults.rig import Figures, ImapTap, Rig, SentFiler, SmtpTap, write_config
from tests.support.dovecot import DovecotServer
from tests.support.smtpd import SmtpServer


class MakeRig(Protocol):
    def __call__(self, db_url: str | None = None, *, via_tap: bool = False,
                 relay_files_copy: bool = False, imap_tap: bool = False) -> Rig: ...


@pytest.fixture
def make_rig(tmp_path: Path, dovecot: DovecotServer, smtpd: SmtpServer) -> Iterator[MakeRig]:
    rigs: list[Rig] = []

    def make(db_url: str | None = None, *, via_tap: bool = False,
             relay_files_copy: bool = False, imap_tap: bool = False) -> Rig:
        url = db_url or f"sqlite:///{tmp_path / 'mailbot.db'}"
        tap = None
        if via_tap or relay_files_copy:
            tap = SmtpTap(smtpd.host, smtpd.port,
                          filer=SentFiler(dovecot) if relay_files_copy else None)
        itap = ImapTap(dovecot.host, dovecot.port) if imap_tap else None
        config = write_config(tmp_path, dovecot, smtpd, db_url=url,
                              smtp_port=tap.port if tap else None,
                              imap_port=itap.port if itap else None)
        rig = Rig(tmp_path, dovecot, smtpd, config, url, tap=tap, imap_tap=itap)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep the call phase's report on the item, so the figures know whether the test passed.
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


_PASSED = pytest.StashKey[bool]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """This test's figures; printed and reported at teardown with whether the test passed."""
    node = request.node
    scenario = node.name
    module = getattr(request.module, "SCENARIO", None)
    if isinstance(module, str):
        scenario = f"{module}.{scenario}"
    figures = Figures(scenario)
    yield figures
    figures.emit(passed=node.stash.get(_PASSED, False))

