"""collections: priority scores, contact log, promises to pay, escalations

Revision ID: 0005_collections
Revises: 0004_disputes
Create Date: 2026-11-28

Contacts and escalation notes are append-only; promises and contacts are never deleted (triggers).
"""
from alembic import op
import sqlalchemy as sa

revision = '0005_collections'
down_revision = '0004_disputes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('made_by_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('contacted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('CALL', 'VISIT')", name=op.f('ck_contacts_channel_known')),
    sa.CheckConstraint("outcome IN ('PAID', 'PROMISE_TO_PAY', 'NOT_REACHABLE', 'REFUSED', 'DISPUTE', 'WRONG_NUMBER', 'OTHER')", name=op.f('ck_contacts_outcome_known')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_contacts_loan_id_loans')),
    sa.ForeignKeyConstraint(['made_by_id'], ['users.id'], name=op.f('fk_contacts_made_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    op.create_index('ix_contacts_loan_id_contacted_at', 'contacts', ['loan_id', 'contacted_at'])
    op.create_index('ix_contacts_made_by_id', 'contacts', ['made_by_id'])
    op.create_index('ix_contacts_outcome', 'contacts', ['outcome'])

    op.create_table('escalations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('closed_reason', sa.Text(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('next_action_on', sa.Date(), nullable=True),
    sa.Column('notice_sent_on', sa.Date(), nullable=True),
    sa.Column('notice_served_on', sa.Date(), nullable=True),
    sa.CheckConstraint("level IN ('MANAGER_REVIEW', 'SENIOR_REVIEW', 'LEGAL')", name=op.f('ck_escalations_level_known')),
    sa.CheckConstraint("status IN ('OPEN', 'CLOSED')", name=op.f('ck_escalations_status_known')),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_escalations_assignee_id_users')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_escalations_branch_id_branches')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_escalations_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalations'))
    )
    op.create_index('ix_escalations_assignee_id', 'escalations', ['assignee_id'])
    op.create_index('ix_escalations_branch_id', 'escalations', ['branch_id'])
    op.create_index('ix_escalations_level_status_branch_id', 'escalations', ['level', 'status', 'branch_id'])
    op.create_index('ix_escalations_loan_id', 'escalations', ['loan_id'])
    op.create_index('ix_escalations_next_action_on', 'escalations', ['next_action_on'])
    op.create_index('ix_escalations_opened_on', 'escalations', ['opened_on'])
    op.create_index('uq_escalations_open_loan_level', 'escalations', ['loan_id', 'level'], unique=True, postgresql_where=sa.text("status = 'OPEN'"), sqlite_where=sa.text("status = 'OPEN'"))

    op.create_table('loan_scores',
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('dpd_points', sa.Integer(), nullable=False),
    sa.Column('overdue_points', sa.Integer(), nullable=False),
    sa.Column('silence_points', sa.Integer(), nullable=False),
    sa.Column('broken_promise_points', sa.Integer(), nullable=False),
    sa.Column('roll_points', sa.Integer(), nullable=False),
    sa.Column('days_since_payment', sa.Integer(), nullable=False),
    sa.Column('broken_promises', sa.Integer(), nullable=False),
    sa.Column('class_month_ago', sa.String(length=8), nullable=True),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_loan_scores_loan_id_loans')),
    sa.PrimaryKeyConstraint('loan_id', name=op.f('pk_loan_scores'))
    )
    op.create_index('ix_loan_scores_score', 'loan_scores', ['score'])

    op.create_table('escalation_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_escalation_notes_author_id_users')),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_escalation_notes_escalation_id_escalations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_notes'))
    )
    op.create_index('ix_escalation_notes_author_id', 'escalation_notes', ['author_id'])
    op.create_index('ix_escalation_notes_escalation_id', 'escalation_notes', ['escalation_id'])

    op.create_table('promises',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('amount_paise', sa.BigInteger(), nullable=False),
    sa.Column('made_on', sa.Date(), nullable=False),
    sa.Column('promised_for', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('settled_on', sa.Date(), nullable=True),
    sa.CheckConstraint("status IN ('OPEN', 'KEPT', 'BROKEN')", name=op.f('ck_promises_status_known')),
    sa.CheckConstraint('amount_paise > 0', name=op.f('ck_promises_amount_positive')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_promises_contact_id_contacts')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_promises_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promises')),
    sa.UniqueConstraint('contact_id', name=op.f('uq_promises_contact_id'))
    )
    op.create_index('ix_promises_loan_id_status', 'promises', ['loan_id', 'status'])
    op.create_index('ix_promises_status_promised_for', 'promises', ['status', 'promised_for'])
    if op.get_bind().dialect.name == "postgresql":
        for table in ("contacts", "promises", "escalation_notes"):
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
        for table in ("contacts", "escalation_notes"):
            op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
    else:
        for table in ("contacts", "promises", "escalation_notes"):
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'kisht: DELETE on {table} is not allowed'); END")
        for table in ("contacts", "escalation_notes"):
            op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'kisht: UPDATE on {table} is not allowed'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("contacts", "promises", "escalation_notes"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
        for table in ("contacts", "escalation_notes"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update ON {table}")
    for table in ("promises", "escalation_notes", "loan_scores", "escalations", "contacts"):
        op.drop_table(table)
