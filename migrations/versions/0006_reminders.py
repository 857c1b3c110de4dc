"""reminders: outbox with a dedupe key per (loan, instalment, rule, date)

Revision ID: 0006_reminders
Revises: 0005_collections
Create Date: 2026-11-29

The outbox is the record of what was said to a borrower: rows are never deleted, the key and the facts of
a row never change, and a row that was SENT (or CANCELLED) is frozen (triggers on both databases).
"""
from alembic import op
import sqlalchemy as sa

revision = '0006_reminders'
down_revision = '0005_collections'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('instalment_id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=16), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('amount_paise', sa.BigInteger(), nullable=False),
    sa.Column('transport', sa.String(length=8), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('PENDING', 'SENT', 'DEFERRED', 'FAILED', 'CANCELLED')", name=op.f('ck_reminders_status_known')),
    sa.CheckConstraint("transport IN ('log', 'smtp', 'webhook')", name=op.f('ck_reminders_transport_known')),
    sa.CheckConstraint("channel IN ('LOG', 'EMAIL', 'SMS', 'WHATSAPP')", name=op.f('ck_reminders_channel_known')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_reminders_attempts_non_negative')),
    sa.CheckConstraint('amount_paise >= 0', name=op.f('ck_reminders_amount_non_negative')),
    sa.ForeignKeyConstraint(['instalment_id'], ['instalments.id'], name=op.f('fk_reminders_instalment_id_instalments')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_reminders_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminders'))
    )
    op.create_index('uq_reminders_loan_id_instalment_id_rule_business_date', 'reminders',
                    ['loan_id', 'instalment_id', 'rule', 'business_date'], unique=True)
    op.create_index('ix_reminders_instalment_id', 'reminders', ['instalment_id'])
    op.create_index('ix_reminders_status_next_attempt_at', 'reminders', ['status', 'next_attempt_at'])
    op.create_index('ix_reminders_status_created_at', 'reminders', ['status', 'created_at'])
    op.create_index('ix_reminders_created_at', 'reminders', ['created_at'])
    op.create_index('ix_reminders_business_date_loan_id', 'reminders', ['business_date', 'loan_id'])
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS reminders_no_delete ON reminders")
        op.execute("DROP TRIGGER IF EXISTS reminders_no_truncate ON reminders")
        op.execute("DROP TRIGGER IF EXISTS reminders_guarded ON reminders")
        op.execute("DROP FUNCTION IF EXISTS kisht_reminders_guarded()")
    op.drop_table('reminders')  # SQLite drops a table's triggers with the table


# Frozen with this revision: the columns that never change, and the statuses after which nothing does.
FACTS = ("loan_id", "instalment_id", "rule", "business_date", "created_at")
FINAL = "('SENT', 'CANCELLED')"


def _postgresql_guards() -> None:
    # kisht_refuse_change() comes from the foundation revision.
    op.execute("CREATE TRIGGER reminders_no_delete BEFORE DELETE ON reminders "
               "FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
    op.execute("CREATE TRIGGER reminders_no_truncate BEFORE TRUNCATE ON reminders "
               "FOR EACH STATEMENT EXECUTE FUNCTION kisht_refuse_change()")
    checks = "\n".join(
        f"IF NEW.{c} IS DISTINCT FROM OLD.{c} THEN RAISE EXCEPTION 'kisht: reminders.{c} is immutable' "
        f"USING ERRCODE = 'restrict_violation'; END IF;" for c in FACTS)
    op.execute(f"""
        CREATE FUNCTION kisht_reminders_guarded() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status IN {FINAL} THEN
                RAISE EXCEPTION 'kisht: a % reminder is immutable', OLD.status USING ERRCODE = 'restrict_violation';
            END IF;
            {checks}
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER reminders_guarded BEFORE UPDATE ON reminders "
               "FOR EACH ROW EXECUTE FUNCTION kisht_reminders_guarded()")


def _sqlite_guards() -> None:
    def refuse(name, event, message, when=""):
        op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON reminders {when} "
                   f"BEGIN SELECT RAISE(ABORT, 'kisht: {message}'); END")

    refuse("reminders_no_delete", "DELETE", "DELETE on reminders is not allowed")
    refuse("reminders_final", "UPDATE", "a sent or cancelled reminder is immutable",
           when=f"WHEN OLD.status IN {FINAL}")
    for c in FACTS:
        refuse(f"reminders_{c}_immutable", f"UPDATE OF {c}", f"reminders.{c} is immutable",
               when=f"WHEN NEW.{c} IS NOT OLD.{c}")
