"""day-end: per-loan history (partitioned by month on PostgreSQL), job runs, kill switches

Revision ID: 0003_dayend
Revises: 0002_payments
Create Date: 2026-11-28

Job runs and flags are never deleted (triggers). Partitions of dayend_positions are created by day-end
itself, one per month, as dates arrive.
"""
from alembic import op
import sqlalchemy as sa

revision = '0003_dayend'
down_revision = '0002_payments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cron_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('forced', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker', sa.String(length=120), nullable=False),
    sa.Column('loans_processed', sa.Integer(), nullable=False),
    sa.Column('batches_done', sa.Integer(), nullable=False),
    sa.Column('batches_total', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'SKIPPED')", name=op.f('ck_cron_runs_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cron_runs'))
    )
    op.create_index('ix_cron_runs_business_date', 'cron_runs', ['business_date'])
    op.create_index('ix_cron_runs_started_at', 'cron_runs', ['started_at'])
    op.create_index('ix_cron_runs_status', 'cron_runs', ['status'])
    op.create_index('uq_cron_runs_job_business_date_attempt', 'cron_runs', ['job', 'business_date', 'attempt'], unique=True)
    op.create_index('uq_cron_runs_one_running', 'cron_runs', ['job', 'business_date'], unique=True, postgresql_where=sa.text("status = 'RUNNING'"), sqlite_where=sa.text("status = 'RUNNING'"))

    op.create_table('dayend_positions',
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('dpd', sa.Integer(), nullable=False),
    sa.Column('asset_class', sa.String(length=8), nullable=False),
    sa.Column('bucket', sa.String(length=16), nullable=False),
    sa.Column('overdue_paise', sa.BigInteger(), nullable=False),
    sa.Column('overdue_since', sa.Date(), nullable=True),
    sa.Column('class_since', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('business_date', 'loan_id', name=op.f('pk_dayend_positions')),
    postgresql_partition_by='RANGE (business_date)'
    )
    op.create_table('feature_flags',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.CheckConstraint("name IN ('CRON_ENABLED', 'ESCALATION_ENABLED', 'SCORING_ENABLED', 'REMINDERS_ENABLED')", name=op.f('ck_feature_flags_name_known')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_feature_flags_updated_by_id_users')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_feature_flags'))
    )
    op.create_index('ix_feature_flags_updated_by_id', 'feature_flags', ['updated_by_id'])
    op.execute("INSERT INTO feature_flags (name, enabled, updated_at, reason) VALUES "
               + ", ".join(f"('{name}', true, CURRENT_TIMESTAMP, 'installed')" for name in FLAGS))
    if op.get_bind().dialect.name == "postgresql":
        for table in ("cron_runs", "feature_flags"):
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
    else:
        for table in ("cron_runs", "feature_flags"):
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'kisht: DELETE on {table} is not allowed'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("cron_runs", "feature_flags"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
    for table in ("feature_flags", "dayend_positions", "cron_runs"):
        op.drop_table(table)


FLAGS = ("CRON_ENABLED", "ESCALATION_ENABLED", "SCORING_ENABLED", "REMINDERS_ENABLED")
