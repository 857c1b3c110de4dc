"""shadow month and go-live: tracker imports and rows, comparisons, issue log, check runs, go/no-go answers

Revision ID: 0010_shadow
Revises: 0009_api_tokens
Create Date: 2026-11-28

Tracker imports and rows, comparisons, check runs (simulations, integrity checks) and go-live answers are
append-only: guard triggers on PostgreSQL and SQLite refuse UPDATE and DELETE (0007's style). Issues change
status through the service, every change audited.
"""
from alembic import op
import sqlalchemy as sa


APPEND_ONLY = ("shadow_imports", "shadow_rows", "shadow_comparisons", "check_runs", "golive_answers")


revision = '0010_shadow'
down_revision = '0009_api_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('check_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_by', sa.String(length=64), nullable=False),
    sa.CheckConstraint("kind IN ('SIMULATION', 'INTEGRITY')", name=op.f('ck_check_runs_kind_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_runs'))
    )
    with op.batch_alter_table('check_runs', schema=None) as batch_op:
        batch_op.create_index('ix_check_runs_kind_name_finished_at', ['kind', 'name', 'finished_at'], unique=False)

    op.create_table('golive_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('holds', sa.Boolean(), nullable=False),
    sa.Column('signatory_id', sa.Integer(), nullable=True),
    sa.Column('signed_on', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('ITEM', 'SIGNOFF')", name=op.f('ck_golive_answers_kind_known')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_golive_answers_recorded_by_id_users')),
    sa.ForeignKeyConstraint(['signatory_id'], ['users.id'], name=op.f('fk_golive_answers_signatory_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_golive_answers'))
    )
    with op.batch_alter_table('golive_answers', schema=None) as batch_op:
        batch_op.create_index('ix_golive_answers_key_id', ['key', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_golive_answers_recorded_by_id'), ['recorded_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_golive_answers_signatory_id'), ['signatory_id'], unique=False)

    op.create_table('shadow_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('layout', sa.String(length=16), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sheet', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('outstanding_paise', sa.BigInteger(), nullable=False),
    sa.Column('collections_paise', sa.BigInteger(), nullable=False),
    sa.Column('imported_by_id', sa.Integer(), nullable=True),
    sa.Column('imported_by_label', sa.String(length=64), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_shadow_imports_version_positive')),
    sa.ForeignKeyConstraint(['imported_by_id'], ['users.id'], name=op.f('fk_shadow_imports_imported_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_imports')),
    sa.UniqueConstraint('business_date', 'version', name=op.f('uq_shadow_imports_business_date_version'))
    )
    with op.batch_alter_table('shadow_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shadow_imports_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_shadow_imports_imported_by_id'), ['imported_by_id'], unique=False)

    op.create_table('shadow_issues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('loan_number', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('raised_by_id', sa.Integer(), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('OUTSTANDING', 'DPD', 'BUCKET', 'COLLECTION', 'ONLY_SYSTEM', 'ONLY_TRACKER', 'SUMMARY')", name=op.f('ck_shadow_issues_kind_known')),
    sa.CheckConstraint("status IN ('OPEN', 'IN_PROGRESS', 'RESOLVED', 'WONT_FIX')", name=op.f('ck_shadow_issues_status_known')),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_shadow_issues_assignee_id_users')),
    sa.ForeignKeyConstraint(['raised_by_id'], ['users.id'], name=op.f('fk_shadow_issues_raised_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_issues'))
    )
    with op.batch_alter_table('shadow_issues', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shadow_issues_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shadow_issues_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_shadow_issues_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_shadow_issues_loan_number'), ['loan_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_shadow_issues_raised_by_id'), ['raised_by_id'], unique=False)
        batch_op.create_index('ix_shadow_issues_status_business_date', ['status', 'business_date'], unique=False)

    op.create_table('shadow_comparisons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('compared_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dayend_ran', sa.Boolean(), nullable=False),
    sa.Column('system_outstanding_paise', sa.BigInteger(), nullable=False),
    sa.Column('tracker_outstanding_paise', sa.BigInteger(), nullable=False),
    sa.Column('system_collections_paise', sa.BigInteger(), nullable=False),
    sa.Column('tracker_collections_paise', sa.BigInteger(), nullable=False),
    sa.Column('outstanding_ok', sa.Boolean(), nullable=False),
    sa.Column('collections_ok', sa.Boolean(), nullable=False),
    sa.Column('buckets_ok', sa.Boolean(), nullable=False),
    sa.Column('dpd_ok', sa.Boolean(), nullable=False),
    sa.Column('converged', sa.Boolean(), nullable=False),
    sa.Column('figures', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['shadow_imports.id'], name=op.f('fk_shadow_comparisons_import_id_shadow_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_comparisons'))
    )
    with op.batch_alter_table('shadow_comparisons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shadow_comparisons_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_shadow_comparisons_import_id'), ['import_id'], unique=False)

    op.create_table('shadow_rows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('loan_number', sa.String(length=32), nullable=False),
    sa.Column('outstanding_paise', sa.BigInteger(), nullable=False),
    sa.Column('dpd', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=16), nullable=False),
    sa.Column('collection_paise', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('collection_paise >= 0', name=op.f('ck_shadow_rows_collection_non_negative')),
    sa.CheckConstraint('dpd >= 0', name=op.f('ck_shadow_rows_dpd_non_negative')),
    sa.CheckConstraint('outstanding_paise >= 0', name=op.f('ck_shadow_rows_outstanding_non_negative')),
    sa.ForeignKeyConstraint(['import_id'], ['shadow_imports.id'], name=op.f('fk_shadow_rows_import_id_shadow_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_rows')),
    sa.UniqueConstraint('import_id', 'loan_number', name=op.f('uq_shadow_rows_import_id_loan_number'))
    )
    create_guards()


def downgrade() -> None:
    drop_guards()
    op.drop_table('shadow_rows')
    with op.batch_alter_table('shadow_comparisons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shadow_comparisons_import_id'))
        batch_op.drop_index(batch_op.f('ix_shadow_comparisons_business_date'))

    op.drop_table('shadow_comparisons')
    with op.batch_alter_table('shadow_issues', schema=None) as batch_op:
        batch_op.drop_index('ix_shadow_issues_status_business_date')
        batch_op.drop_index(batch_op.f('ix_shadow_issues_raised_by_id'))
        batch_op.drop_index(batch_op.f('ix_shadow_issues_loan_number'))
        batch_op.drop_index(batch_op.f('ix_shadow_issues_created_at'))
        batch_op.drop_index(batch_op.f('ix_shadow_issues_business_date'))
        batch_op.drop_index(batch_op.f('ix_shadow_issues_assignee_id'))

    op.drop_table('shadow_issues')
    with op.batch_alter_table('shadow_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shadow_imports_imported_by_id'))
        batch_op.drop_index(batch_op.f('ix_shadow_imports_business_date'))

    op.drop_table('shadow_imports')
    with op.batch_alter_table('golive_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_golive_answers_signatory_id'))
        batch_op.drop_index(batch_op.f('ix_golive_answers_recorded_by_id'))
        batch_op.drop_index('ix_golive_answers_key_id')

    op.drop_table('golive_answers')
    with op.batch_alter_table('check_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_check_runs_kind_name_finished_at')

    op.drop_table('check_runs')


def create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # kisht_refuse_change() comes from the foundation revision.
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                           f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION kisht_refuse_change()")
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'kisht: {event} on {table} is not allowed'); END")


def drop_guards() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in APPEND_ONLY:
        for name in ("no_update", "no_delete") + (("no_truncate",) if postgresql else ()):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{name}" + (f" ON {table}" if postgresql else ""))
