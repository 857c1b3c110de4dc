"""loans keep their oldest unpaid due date instead of their DPD

Revision ID: 0011_loans_overdue_since
Revises: 0010_shadow
Create Date: 2026-11-28

A loan's DPD grows by one every day by itself, so a stored `dpd` made day-end rewrite every overdue loan
every night (into every index of `loans`). `overdue_since` (the oldest unpaid due date) changes only when
money or a due date moves it; DPD is derived from it where it is shown, sorted or filtered.
"""
from alembic import op
import sqlalchemy as sa

revision = '0011_loans_overdue_since'
down_revision = '0010_shadow'
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.add_column('loans', sa.Column('overdue_since', sa.Date(), nullable=True))
    as_of = "COALESCE(position_date, CURRENT_DATE - 1)"
    if _postgresql():
        op.execute(f"UPDATE loans SET overdue_since = {as_of} - dpd + 1 WHERE dpd > 0")
    else:
        op.execute(f"UPDATE loans SET overdue_since = date(COALESCE(position_date, date('now', '-1 day')), "
                   f"'-' || (dpd - 1) || ' days') WHERE dpd > 0")
    for name in ('ix_loans_dpd', 'ix_loans_branch_id_dpd', 'ix_loans_collector_id_dpd'):
        op.drop_index(name, table_name='loans')
    op.execute("ALTER TABLE loans DROP COLUMN dpd")
    op.create_index('ix_loans_overdue_since', 'loans', ['overdue_since'])
    op.create_index('ix_loans_branch_id_overdue_since', 'loans', ['branch_id', 'overdue_since'])
    op.create_index('ix_loans_collector_id_overdue_since', 'loans', ['collector_id', 'overdue_since'])


def downgrade() -> None:
    op.add_column('loans', sa.Column('dpd', sa.Integer(), nullable=False, server_default='0'))
    if _postgresql():
        op.execute("UPDATE loans SET dpd = COALESCE(position_date, CURRENT_DATE - 1) - overdue_since + 1 "
                   "WHERE overdue_since IS NOT NULL")
    else:
        op.execute("UPDATE loans SET dpd = CAST(julianday(COALESCE(position_date, date('now', '-1 day'))) "
                   "- julianday(overdue_since) AS INTEGER) + 1 WHERE overdue_since IS NOT NULL")
    for name in ('ix_loans_overdue_since', 'ix_loans_branch_id_overdue_since', 'ix_loans_collector_id_overdue_since'):
        op.drop_index(name, table_name='loans')
    op.execute("ALTER TABLE loans DROP COLUMN overdue_since")
    op.create_index('ix_loans_dpd', 'loans', ['dpd'])
    op.create_index('ix_loans_branch_id_dpd', 'loans', ['branch_id', 'dpd'])
    op.create_index('ix_loans_collector_id_dpd', 'loans', ['collector_id', 'dpd'])
