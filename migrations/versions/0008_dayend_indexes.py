"""day-end indexes: money received per loan from an index alone; instalments that have just fallen due

Revision ID: 0008_dayend_indexes
Revises: 0007_reconciliation
Create Date: 2026-11-28

Measured on a million loans (docs/performance.md, bench/dayend_whatif.py):

* payments (loan_id) INCLUDE (id, value_date, amount_paise) WHERE status = 'POSTED': a batch's money
  received becomes an index-only scan of its loan-id range instead of a heap scan over most of payments
  (payments are stored in the order they were made, so one loan's are spread over the whole table);
* instalments (due_date, loan_id) WHERE status = 'DUE': day-end marks the instalments that fell due since
  the last run; once marked they leave this index, so it holds only future instalments and the scan for
  due_date <= D reads just the new ones.
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
    op.create_index('ix_instalments_due_unmarked', 'instalments', ['due_date', 'loan_id'],
                    postgresql_where=sa.text("status = 'DUE'"), sqlite_where=sa.text("status = 'DUE'"))


def downgrade() -> None:
    op.drop_index('ix_instalments_due_unmarked', table_name='instalments')
    op.drop_index('ix_payments_posted_by_loan', table_name='payments')
