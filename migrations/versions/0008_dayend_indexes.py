"""day-end index: money received per loan from an index alone

Revision ID: 0008_dayend_indexes
Revises: 0007_reconciliation
Create Date: 2026-11-28

payments (loan_id) INCLUDE (id, value_date, amount_paise) WHERE status = 'POSTED': a day-end batch's
money received becomes an index-only scan of its loan-id range instead of a heap scan over most of the
payments table (payments are stored in the order they were made, so one loan's are spread over the whole
table). Measured on a million loans: docs/performance.md.
"""
from alembic import op
import sqlalchemy as sa

revision = '0008_dayend_indexes'
down_revision = '0007_reconciliation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_payments_posted_by_loan', 'payments', ['loan_id'],
                    postgresql_include=['id', 'value_date', 'amount_paise'],
                    postgresql_where=sa.text("status = 'POSTED'"), sqlite_where=sa.text("status = 'POSTED'"))


def downgrade() -> None:
    op.drop_index('ix_payments_posted_by_loan', table_name='payments')
