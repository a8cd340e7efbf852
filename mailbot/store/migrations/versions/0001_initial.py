"""The initial schema: mails, seen_messages, checkpoints, drafts, audit_events, users, leases.

Written by hand with plain SQLAlchemy types (not the store's type decorators), so this file
keeps describing the same DDL however ``mailbot.store`` changes later.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# BIGINT keys on PostgreSQL; SQLite needs INTEGER PRIMARY KEY to autoincrement.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

OUTCOMES = (
    "'skipped', 'duplicate', 'needs_agent', 'drafted', 'auto_reply', 'escalated', "
    "'ignored', 'failed'"
)
STATES = (
    "'pending', 'approved', 'edited', 'sending', 'sent', 'failed', 'rejected', 'escalated'"
)
ROLES = "'agent', 'approver', 'admin'"


def upgrade() -> None:
    op.create_table(
        "mails",
        sa.Column("id", ID, nullable=False),
        sa.Column("mailbox", sa.String(), nullable=False),
        sa.Column("source_key", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("from_addr", sa.String(), nullable=False),
        sa.Column("from_name", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("received_at", TS, nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("source_done", sa.Boolean(), nullable=False),
        sa.Column("answered_done", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mails"),
        sa.UniqueConstraint("mailbox", "source_key", name="uq_mails_mailbox_source_key"),
        sa.CheckConstraint(f"outcome IN ({OUTCOMES})", name="ck_mails_outcome"),
    )
    op.create_index("ix_mails_mailbox_dedupe_key", "mails", ["mailbox", "dedupe_key"])
    op.create_index("ix_mails_from_addr", "mails", ["from_addr"])
    op.create_index("ix_mails_recorded_at", "mails", ["recorded_at"])

    op.create_table(
        "seen_messages",
        sa.Column("mailbox", sa.String(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("mail_id", ID, nullable=False),
        sa.PrimaryKeyConstraint("mailbox", "dedupe_key", name="pk_seen_messages"),
        sa.ForeignKeyConstraint(
            ["mail_id"], ["mails.id"], name="fk_seen_messages_mail_id_mails"
        ),
    )

    op.create_table(
        "checkpoints",
        sa.Column("mailbox", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("mailbox", name="pk_checkpoints"),
    )

    op.create_table(
        "drafts",
        sa.Column("id", ID, nullable=False),
        sa.Column("mail_id", ID, nullable=False),
        sa.Column("mailbox", sa.String(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("auto", sa.Boolean(), nullable=False),
        sa.Column("to_addr", sa.String(), nullable=False),
        sa.Column("to_name", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("in_reply_to", sa.String(), nullable=True),
        sa.Column("references", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("macro_id", sa.String(), nullable=True),
        sa.Column("macro_hash", sa.String(), nullable=True),
        sa.Column("rule", sa.String(), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=True),
        sa.Column("explanation", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("assigned_to", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_drafts"),
        sa.ForeignKeyConstraint(["mail_id"], ["mails.id"], name="fk_drafts_mail_id_mails"),
        sa.UniqueConstraint("message_id", name="uq_drafts_message_id"),
        sa.CheckConstraint(f"state IN ({STATES})", name="ck_drafts_state"),
    )
    op.create_index("ix_drafts_mail_id", "drafts", ["mail_id"])
    op.create_index("ix_drafts_state_not_before", "drafts", ["state", "not_before"])
    op.create_index("ix_drafts_to_addr_created_at", "drafts", ["to_addr", "created_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("mail_id", ID, nullable=False),
        sa.Column("draft_id", ID, nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.ForeignKeyConstraint(
            ["mail_id"], ["mails.id"], name="fk_audit_events_mail_id_mails"
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["drafts.id"], name="fk_audit_events_draft_id_drafts"
        ),
    )
    op.create_index("ix_audit_events_mail_id", "audit_events", ["mail_id"])
    op.create_index("ix_audit_events_draft_id", "audit_events", ["draft_id"])

    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint(f"role IN ({ROLES})", name="ck_users_role"),
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    for table in (
        "leases", "users", "audit_events", "drafts", "checkpoints", "seen_messages", "mails",
    ):
        op.drop_table(table)
