"""promises carry their loan's branch, so a manager's promises panel reads only that branch's promises

Revision ID: 0013_promises_branch_id
Revises: 0012_list_covering_indexes
Create Date: 2026-11-28

The manager home lists the branch's open promises due within a week. With the branch only on the loan, every
view joined all 20,000 loans of the branch to every open promise of the portfolio (18-48 ms on a million
loans). Disputes, payments and escalations already copy their loan's branch; promises now do too (a loan
never changes branch).
"""
from alembic import op
import sqlalchemy as sa

revision = '0013_promises_branch_id'
down_revision = '0012_list_covering_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('promises', sa.Column('branch_id', sa.Integer(), nullable=True))
    op.execute("UPDATE promises SET branch_id = (SELECT loans.branch_id FROM loans WHERE loans.id = promises.loan_id)")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('promises', 'branch_id', nullable=False)
        op.create_foreign_key(op.f('fk_promises_branch_id_branches'), 'promises', 'branches', ['branch_id'], ['id'])
    else:  # SQLite rebuilds the table for NOT NULL and a foreign key, and its delete guard with it
        with op.batch_alter_table('promises') as batch:
            batch.alter_column('branch_id', existing_type=sa.Integer(), nullable=False)
            batch.create_foreign_key(op.f('fk_promises_branch_id_branches'), 'branches', ['branch_id'], ['id'])
        op.execute("CREATE TRIGGER promises_no_delete BEFORE DELETE ON promises "
                   "BEGIN SELECT RAISE(ABORT, 'kisht: DELETE on promises is not allowed'); END")
    op.create_index('ix_promises_branch_id_status_promised_for', 'promises', ['branch_id', 'status', 'promised_for'])


def downgrade() -> None:
    op.drop_index('ix_promises_branch_id_status_promised_for', table_name='promises')
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f('fk_promises_branch_id_branches'), 'promises', type_='foreignkey')
        op.drop_column('promises', 'branch_id')
    else:
        with op.batch_alter_table('promises') as batch:
            batch.drop_constraint(op.f('fk_promises_branch_id_branches'), type_='foreignkey')
            batch.drop_column('branch_id')
        op.execute("CREATE TRIGGER promises_no_delete BEFORE DELETE ON promises "
                   "BEGIN SELECT RAISE(ABORT, 'kisht: DELETE on promises is not allowed'); END")
