"""foundation: branches, users, borrowers, loans, instalments, audit log

Revision ID: 0001_foundation
Revises: 
Create Date: 2026-11-28

Besides the tables, this installs the database's own guards (PostgreSQL and SQLite): the audit log is
append-only, loan terms and schedules never change, and neither loans nor instalments are deleted.
"""
from alembic import op
import sqlalchemy as sa

revision = '0001_foundation'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    op.create_table('borrowers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('phone', sa.String(length=10), nullable=False),
    sa.Column('preferred_language', sa.String(length=2), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_borrowers'))
    )
    op.create_index('ix_borrowers_name', 'borrowers', ['name'])
    op.create_index('ix_borrowers_phone', 'borrowers', ['phone'])

    op.create_table('branches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_branches')),
    sa.UniqueConstraint('code', name=op.f('uq_branches_code'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('is_demo', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('collector', 'manager', 'finance', 'legal', 'admin')", name=op.f('ck_users_role_known')),
    sa.CheckConstraint("role NOT IN ('collector', 'manager') OR branch_id IS NOT NULL", name=op.f('ck_users_branch_for_branch_roles')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_users_branch_id_branches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_index('ix_users_branch_id', 'users', ['branch_id'])
    op.create_index('ix_users_is_demo', 'users', ['is_demo'])
    op.create_index('ix_users_role', 'users', ['role'])

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity_type', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('after', sa.Text(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_log_actor_id_users')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_audit_log_branch_id_branches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_log_seq'))
    )
    op.create_index('ix_audit_log_action', 'audit_log', ['action'])
    op.create_index('ix_audit_log_actor_id', 'audit_log', ['actor_id'])
    op.create_index('ix_audit_log_branch_id', 'audit_log', ['branch_id'])
    op.create_index('ix_audit_log_entity_type_entity_id', 'audit_log', ['entity_type', 'entity_id'])
    op.create_index('ix_audit_log_occurred_at', 'audit_log', ['occurred_at'])

    op.create_table('loans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loan_number', sa.String(length=32), nullable=False),
    sa.Column('borrower_id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('collector_id', sa.Integer(), nullable=True),
    sa.Column('principal_paise', sa.BigInteger(), nullable=False),
    sa.Column('annual_rate_bps', sa.Integer(), nullable=False),
    sa.Column('tenure_months', sa.Integer(), nullable=False),
    sa.Column('emi_paise', sa.BigInteger(), nullable=False),
    sa.Column('disbursed_on', sa.Date(), nullable=False),
    sa.Column('first_due_on', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('outstanding_principal_paise', sa.BigInteger(), nullable=False),
    sa.Column('overdue_paise', sa.BigInteger(), nullable=False),
    sa.Column('dpd', sa.Integer(), nullable=False),
    sa.Column('asset_class', sa.String(length=8), nullable=False),
    sa.Column('bucket', sa.String(length=16), nullable=False),
    sa.Column('position_date', sa.Date(), nullable=True),
    sa.CheckConstraint("asset_class IN ('STANDARD', 'SMA-0', 'SMA-1', 'SMA-2', 'NPA')", name=op.f('ck_loans_class_known')),
    sa.CheckConstraint("status IN ('ACTIVE', 'CLOSED')", name=op.f('ck_loans_status_known')),
    sa.CheckConstraint('annual_rate_bps >= 0 AND annual_rate_bps <= 6000', name=op.f('ck_loans_rate_range')),
    sa.CheckConstraint('first_due_on >= disbursed_on', name=op.f('ck_loans_first_due_after_disbursal')),
    sa.CheckConstraint('principal_paise > 0', name=op.f('ck_loans_principal_positive')),
    sa.CheckConstraint('tenure_months >= 1 AND tenure_months <= 480', name=op.f('ck_loans_tenure_range')),
    sa.ForeignKeyConstraint(['borrower_id'], ['borrowers.id'], name=op.f('fk_loans_borrower_id_borrowers')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_loans_branch_id_branches')),
    sa.ForeignKeyConstraint(['collector_id'], ['users.id'], name=op.f('fk_loans_collector_id_users')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_loans_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loans')),
    sa.UniqueConstraint('loan_number', name=op.f('uq_loans_loan_number'))
    )
    op.create_index('ix_loans_asset_class', 'loans', ['asset_class'])
    op.create_index('ix_loans_borrower_id', 'loans', ['borrower_id'])
    op.create_index('ix_loans_branch_id', 'loans', ['branch_id'])
    op.create_index('ix_loans_branch_id_dpd', 'loans', ['branch_id', 'dpd'])
    op.create_index('ix_loans_bucket', 'loans', ['bucket'])
    op.create_index('ix_loans_collector_id', 'loans', ['collector_id'])
    op.create_index('ix_loans_collector_id_dpd', 'loans', ['collector_id', 'dpd'])
    op.create_index('ix_loans_created_by_id', 'loans', ['created_by_id'])
    op.create_index('ix_loans_disbursed_on', 'loans', ['disbursed_on'])
    op.create_index('ix_loans_dpd', 'loans', ['dpd'])
    op.create_index('ix_loans_overdue_paise', 'loans', ['overdue_paise'])
    op.create_index('ix_loans_status', 'loans', ['status'])

    op.create_table('instalments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('principal_due_paise', sa.BigInteger(), nullable=False),
    sa.Column('interest_due_paise', sa.BigInteger(), nullable=False),
    sa.Column('cumulative_due_paise', sa.BigInteger(), nullable=False),
    sa.Column('principal_paid_paise', sa.BigInteger(), nullable=False),
    sa.Column('interest_paid_paise', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.CheckConstraint("status IN ('DUE', 'PARTIALLY_PAID', 'PAID', 'OVERDUE')", name=op.f('ck_instalments_status_known')),
    sa.CheckConstraint('interest_paid_paise <= interest_due_paise', name=op.f('ck_instalments_interest_paid_le_due')),
    sa.CheckConstraint('principal_due_paise >= 0 AND interest_due_paise >= 0', name=op.f('ck_instalments_dues_non_negative')),
    sa.CheckConstraint('principal_paid_paise <= principal_due_paise', name=op.f('ck_instalments_principal_paid_le_due')),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_instalments_seq_positive')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_instalments_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instalments')),
    sa.UniqueConstraint('loan_id', 'seq', name=op.f('uq_instalments_loan_id_seq'))
    )
    op.create_index('ix_instalments_due_date', 'instalments', ['due_date'])
    op.create_index('ix_instalments_loan_id', 'instalments', ['loan_id'])
    op.create_index('ix_instalments_status', 'instalments', ['status'])
    create_guards()


def downgrade() -> None:
    drop_guards()
    for table in ('instalments', 'loans', 'audit_log', 'users', 'branches', 'borrowers', 'audit_chain_head'):
        op.drop_table(table)


# Frozen with this revision: the columns each guard protects.
LOAN_TERMS = ("loan_number", "borrower_id", "branch_id", "principal_paise", "annual_rate_bps", "tenure_months",
              "emi_paise", "disbursed_on", "first_due_on", "created_at", "created_by_id")
SCHEDULE = ("loan_id", "seq", "due_date", "principal_due_paise", "interest_due_paise", "cumulative_due_paise")
GENESIS_HASH = "0" * 64


def create_guards() -> None:
    op.execute(f"INSERT INTO audit_chain_head (id, seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')")
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _postgresql_guards() -> None:
    op.execute("""
        CREATE FUNCTION kisht_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'kisht: % on % is not allowed (append-only / immutable)', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$""")
    for table in ("audit_log", "audit_chain_head", "loans", "instalments"):
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION kisht_refuse_change()")
    op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
               "FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
    for table, columns in (("loans", LOAN_TERMS), ("instalments", SCHEDULE)):
        checks = "\n".join(
            f"IF NEW.{c} IS DISTINCT FROM OLD.{c} THEN RAISE EXCEPTION 'kisht: {table}.{c} is immutable' "
            f"USING ERRCODE = 'restrict_violation'; END IF;" for c in columns)
        op.execute(f"""
            CREATE FUNCTION kisht_{table}_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {checks}
                RETURN NEW;
            END $$""")
        op.execute(f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION kisht_{table}_immutable()")
    op.execute("""
        CREATE FUNCTION kisht_schedule_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.seq > (SELECT tenure_months FROM loans WHERE id = NEW.loan_id) THEN
                RAISE EXCEPTION 'kisht: a schedule cannot be extended beyond its tenure'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER instalments_fixed BEFORE INSERT ON instalments "
               "FOR EACH ROW EXECUTE FUNCTION kisht_schedule_fixed()")


def _sqlite_guards() -> None:
    def refuse(name, event, table, message, when=""):
        op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} {when} "
                   f"BEGIN SELECT RAISE(ABORT, 'kisht: {message}'); END")

    for table in ("audit_log", "audit_chain_head", "loans", "instalments"):
        refuse(f"{table}_no_delete", "DELETE", table, f"DELETE on {table} is not allowed")
    refuse("audit_log_no_update", "UPDATE", "audit_log", "UPDATE on audit_log is not allowed")
    for table, columns in (("loans", LOAN_TERMS), ("instalments", SCHEDULE)):
        for c in columns:
            refuse(f"{table}_{c}_immutable", f"UPDATE OF {c}", table, f"{table}.{c} is immutable",
                   when=f"WHEN NEW.{c} IS NOT OLD.{c}")
    refuse("instalments_fixed", "INSERT", "instalments", "a schedule cannot be extended beyond its tenure",
           when="WHEN NEW.seq > (SELECT tenure_months FROM loans WHERE id = NEW.loan_id)")


def drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("audit_log", "audit_chain_head", "loans", "instalments"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS loans_immutable ON loans")
        op.execute("DROP TRIGGER IF EXISTS instalments_immutable ON instalments")
        op.execute("DROP TRIGGER IF EXISTS instalments_fixed ON instalments")
        for function in ("kisht_refuse_change", "kisht_loans_immutable", "kisht_instalments_immutable",
                         "kisht_schedule_fixed"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    # SQLite drops a table's triggers with the table.
