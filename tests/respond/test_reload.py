"""Hot reload: edits are picked up without a restart; a bad edit keeps the last good set."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from mailbot.models import Action, Decision
from mailbot.respond import Responder
from mailbot.respond.dryrun import dry_run_mailbox
from tests.respond.conftest import MONDAY_10, MacroWorld, analysis, mail


def praise(responder: Responder) -> Decision:
    m, cleaned = mail("Top", "Geweldige service, echt top gedaan, dank jullie wel!")
    return responder.decide(m, cleaned, analysis("praise"), mailbox=dry_run_mailbox(), auto_allowed=True,
                            now=MONDAY_10)


def bump(path: os.PathLike[str]) -> None:
    """Make sure the change is visible even on a filesystem with coarse mtimes."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_an_edited_macro_is_used_without_a_restart(world: MacroWorld) -> None:
    responder = world.responder()
    first = praise(responder)
    assert first.draft is not None and "Dank u wel!" in first.draft.body
    path = world.edit("praise.yaml", (world.macros / "praise.yaml").read_text().replace(
        "Dank u wel!", "Hartelijk dank voor uw compliment!"))
    bump(path)
    assert responder.check_reload() is True
    second = praise(responder)
    assert second.draft is not None and "Hartelijk dank voor uw compliment!" in second.draft.body
    assert second.macro_hash != first.macro_hash
    assert responder.check_reload() is False        # nothing changed since


def test_policy_edits_and_new_files_are_picked_up(world: MacroWorld) -> None:
    responder = world.responder()
    assert praise(responder).action is Action.SEND
    world.policy.write_text(world.policy.read_text().replace(
        "    when: {macros: [praise_thanks]}\n    action: send", "    when: {macros: [praise_thanks]}\n"
                                                              "    action: draft"))
    bump(world.policy)
    responder.check_reload()
    assert praise(responder).action is Action.DRAFT
    world.edit("praise2.yaml", (world.macros / "praise.yaml").read_text()
               .replace("id: praise_thanks", "id: praise_vip").replace("priority: 10", "priority: 11"))
    responder.check_reload()
    assert praise(responder).macro_id == "praise_vip"
    (world.macros / "praise2.yaml").unlink()
    responder.check_reload()
    assert praise(responder).macro_id == "praise_thanks"


def test_an_invalid_edit_keeps_the_last_good_set_and_says_why(world: MacroWorld,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    responder = world.responder()
    good = praise(responder)
    loaded_at = responder.status().loaded_at
    path = world.edit("praise.yaml", (world.macros / "praise.yaml").read_text().replace(
        "Dank u wel!", "Dank u wel, {{ naam }}!"))
    bump(path)
    with caplog.at_level(logging.ERROR, logger="mailbot.respond"):
        assert responder.check_reload() is False
    # Still running on the last good set, with the same macro version.
    still = praise(responder)
    assert still.action is Action.SEND and still.macro_hash == good.macro_hash
    status = responder.status()
    assert status.loaded_at == loaded_at and not status.ok
    assert [(f.file, f.line) for f in status.errors] == [(str(path), 13)]
    assert "unknown variable 'naam'" in status.errors[0].message
    assert f"{path}:13: templates.nl.body: unknown variable 'naam'" in caplog.text
    assert "keeping the set loaded at" in caplog.text
    # The error is logged once, not every two seconds.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="mailbot.respond"):
        responder.check_reload()
    assert caplog.text == ""
    # Fixing the file brings the new version in.
    world.edit("praise.yaml", (world.macros / "praise.yaml").read_text().replace("{{ naam }}", "{{ agent }}"))
    bump(path)
    assert responder.check_reload() is True
    fixed = praise(responder)
    assert fixed.draft is not None and "Dank u wel, Sanne de Vries!" in fixed.draft.body
    assert responder.status().ok


def test_a_yaml_syntax_error_and_a_tie_keep_the_last_good_set(world: MacroWorld) -> None:
    responder = world.responder()
    world.edit("broken.yaml", "id: broken\ndescription: [oops\n")
    responder.check_reload()
    assert praise(responder).action is Action.SEND
    assert any(f.file.endswith("broken.yaml") and f.line == 3 for f in responder.status().errors)
    (world.macros / "broken.yaml").unlink()
    world.edit("praise_copy.yaml", (world.macros / "praise.yaml").read_text().replace(
        "id: praise_thanks", "id: praise_copy"))
    responder.check_reload()
    assert praise(responder).macro_id == "praise_thanks"
    assert "always ties" in responder.status().errors[0].message


def test_public_calls_check_for_changes_at_most_every_interval(world: MacroWorld) -> None:
    clock = [100.0]
    responder = world.responder()
    responder._reloader._monotonic = lambda: clock[0]   # a controllable clock instead of sleeping
    responder._reloader._last_check = clock[0]
    path = world.edit("praise.yaml", (world.macros / "praise.yaml").read_text().replace(
        "Dank u wel!", "Bedankt!"))
    bump(path)
    clock[0] += 1.0
    draft = praise(responder).draft
    assert draft is not None and "Dank u wel!" in draft.body     # within 2 s: not checked yet
    clock[0] += 1.5
    draft = praise(responder).draft
    assert draft is not None and "Bedankt!" in draft.body        # the next call after 2 s reloads


def test_deciding_while_reloading_from_many_threads(world: MacroWorld) -> None:
    """Every decision comes from one whole set, never from a half-swapped one."""
    responder = world.responder(reload_interval=0.0)
    text = (world.macros / "praise.yaml").read_text()
    versions = {praise(responder).macro_hash}
    errors: list[BaseException] = []
    seen: list[tuple[str | None, str]] = []
    stop = threading.Event()

    def decide_forever() -> None:
        try:
            while not stop.is_set():
                d = praise(responder)
                assert d.draft is not None
                seen.append((d.macro_hash, d.draft.body))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=decide_forever) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for i in range(12):
            path = world.edit("praise.yaml", text.replace("Dank u wel!", f"Dank u wel! v{i}"))
            bump(path)
            responder.check_reload()
            versions.add(responder.macro_hash("praise_thanks"))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not errors
    assert len(versions) == 13
    bodies: dict[str | None, set[str]] = {}
    for macro_hash, body in seen:
        bodies.setdefault(macro_hash, set()).add(body)
    assert set(bodies) <= versions
    assert all(len(b) == 1 for b in bodies.values())   # one hash, one text: no mixing
