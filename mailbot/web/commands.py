"""`mailbot web` and `mailbot users ...`: the page's commands, added to the main parser.

Passwords never travel on the command line (where `ps` and shell history would show them):
they come from a prompt (asked twice), or from ``--password-file FILE`` (``-`` for stdin),
or from stdin when it is not a terminal. Heavy imports (Starlette, uvicorn, argon2) happen
inside the commands, so other `mailbot` commands start as fast as before.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mailbot.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from mailbot.app import App

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_STATE = 0, 1, 2, 3, 4
ROLES = ("agent", "approver", "admin")


def add_commands(sub: Any) -> None:
    """Add `web` and `users` to the subcommands of `mailbot`."""
    p = sub.add_parser("web", help="serve the agents' web page on the configured store")
    p.add_argument("--host", help="address to listen on (default: web.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: web.port, 8080)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("users", help="accounts for the web page: add, list, disable, enable, ...")
    usub = p.add_subparsers(dest="users_action", required=True, metavar="ACTION")
    u = usub.add_parser("add", help="add a user (the password is asked for, or read from a file)")
    u.add_argument("username")
    u.add_argument("--role", choices=ROLES, default="agent",
                   help="agent: edits drafts; approver: also sends; admin: also manages users")
    u.add_argument("--password-file", metavar="FILE",
                   help="read the password from the first line of FILE ('-' for stdin)")
    u = usub.add_parser("list", help="every user with role and status")
    u.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, helptext in (("disable", "block a user and end their sessions"),
                           ("enable", "allow a disabled user to sign in again")):
        u = usub.add_parser(name, help=helptext)
        u.add_argument("username")
    u = usub.add_parser("passwd", help="set a new password (ends the user's sessions)")
    u.add_argument("username")
    u.add_argument("--password-file", metavar="FILE")
    u = usub.add_parser("role", help="change a user's role")
    u.add_argument("username")
    u.add_argument("role", choices=ROLES)
    p.set_defaults(func=cmd_users)


# ------------------------------------------------------------------ web


def cmd_web(args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.app import App
    from mailbot.web.server import WebServer

    app = App.from_config(args.config, analysis=False)
    try:
        server = WebServer(app, host=args.host, port=args.port)
        asyncio.run(server.serve())
        return EXIT_OK
    finally:
        app.close()


# ------------------------------------------------------------------ users


def cmd_users(args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.cli import with_store_app

    return with_store_app(args, out, _users)


def _users(app: App, args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.store import Role
    from mailbot.store.accounts import UserExistsError
    from mailbot.web.passwords import Passwords, check_new_password, check_username

    accounts = app.store.accounts
    action = args.users_action
    if action == "list":
        users = accounts.list_users()
        if args.json:
            for user in users:
                out.write(json.dumps({"username": user.username, "role": user.role.value,
                                      "active": user.active,
                                      "created_at": user.created_at.isoformat()}) + "\n")
        elif not users:
            out.write("no users; add one with: mailbot users add NAME --role admin\n")
        else:
            out.write(f"{'user':<24} {'role':<10} status\n")
            for user in users:
                out.write(f"{user.username:<24} {user.role.value:<10} "
                          f"{'active' if user.active else 'disabled'}\n")
        return EXIT_OK
    try:
        name = check_username(args.username)
    except ValueError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if action in ("add", "passwd"):
            password = read_password(args.password_file, sys.stdin)
            try:
                check_new_password(password, name)
            except ValueError as exc:
                print(f"mailbot: {exc}", file=sys.stderr)
                return EXIT_USAGE
            hashed = Passwords().hash(password)
            if action == "add":
                accounts.add_user(name, hashed, Role(args.role))
                out.write(f"user {name} added as {args.role}\n")
            else:
                accounts.update_user(name, password_hash=hashed)
                out.write(f"password of {name} changed; their sessions are ended\n")
        elif action in ("disable", "enable"):
            accounts.update_user(name, active=action == "enable")
            out.write(f"user {name} {action}d\n")
        elif action == "role":
            accounts.update_user(name, role=Role(args.role))
            out.write(f"user {name} is now {args.role}\n")
    except UserExistsError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_STATE
    except NotFoundError:
        print(f"mailbot: no user {name!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return EXIT_OK


def read_password(password_file: str | None, stdin: TextIO) -> str:
    """From ``password_file`` (first line; ``-`` is stdin), else a prompt on a terminal
    (asked twice), else the first line of stdin. ``ConfigError`` when unreadable or the two
    prompts differ."""
    if password_file is not None:
        try:
            text = stdin.read() if password_file == "-" else Path(password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the password file: {exc.strerror}", file=password_file) from exc
        return _first_line(text)
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ConfigError("the two passwords differ")
        return first
    return _first_line(stdin.read())


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""
