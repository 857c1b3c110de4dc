"""payments, reversals, approvals, allocations, idempotency

Revision ID: 0002_payments
Revises: 0001_foundation
Create Date: 2026-11-28

Guards: a payment's amount, dates, mode, reference and maker never change and no payment is deleted;
its status moves only from PENDING_APPROVAL to POSTED or REJECTED, and from POSTED to REVERSED. Reversals are never changed or
deleted; an approval changes only while PENDING and is never deleted.
"""
from alembic import op
import sqlalchemy as sa

revision = '0002_payments'
down_revision = '0001_foundation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_idempotency_records_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
    sa.UniqueConstraint('key', name=op.f('uq_idempotency_records_key'))
    )
    op.create_index('ix_idempotency_records_created_at', 'idempotency_records', ['created_at'])
    op.create_index('ix_idempotency_records_owner_id', 'idempotency_records', ['owner_id'])

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('borrower_id', sa.Integer(), nullable=False),
    sa.Column('amount_paise', sa.BigInteger(), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('utr', sa.String(length=32), nullable=True),
    sa.Column('cheque_bank', sa.String(length=11), nullable=True),
    sa.Column('receipt_number', sa.String(length=32), nullable=True),
    sa.Column('value_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("mode = 'CASH' OR utr IS NOT NULL", name=op.f('ck_payments_reference_unless_cash')),
    sa.CheckConstraint("mode IN ('CASH', 'UPI', 'NEFT', 'RTGS', 'IMPS', 'CHEQUE')", name=op.f('ck_payments_mode_known')),
    sa.CheckConstraint("status IN ('POSTED', 'PENDING_APPROVAL', 'REJECTED', 'REVERSED')", name=op.f('ck_payments_status_known')),
    sa.CheckConstraint('amount_paise > 0', name=op.f('ck_payments_amount_positive')),
    sa.ForeignKeyConstraint(['borrower_id'], ['borrowers.id'], name=op.f('fk_payments_borrower_id_borrowers')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_payments_branch_id_branches')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_payments_loan_id_loans')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_payments_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('reference', name=op.f('uq_payments_reference'))
    )
    op.create_index('ix_payments_borrower_id_value_date', 'payments', ['borrower_id', 'value_date'])
    op.create_index('ix_payments_branch_id', 'payments', ['branch_id'])
    op.create_index('ix_payments_created_at', 'payments', ['created_at'])
    op.create_index('ix_payments_loan_id_value_date', 'payments', ['loan_id', 'value_date'])
    op.create_index('ix_payments_mode', 'payments', ['mode'])
    op.create_index('ix_payments_recorded_by_id', 'payments', ['recorded_by_id'])
    op.create_index('ix_payments_status', 'payments', ['status'])
    op.create_index('ix_payments_value_date', 'payments', ['value_date'])
    op.create_index('uq_payments_cash_receipt_live', 'payments', ['branch_id', 'receipt_number'], unique=True, postgresql_where=sa.text("receipt_number IS NOT NULL AND status NOT IN ('REJECTED', 'REVERSED')"), sqlite_where=sa.text("receipt_number IS NOT NULL AND status NOT IN ('REJECTED', 'REVERSED')"))
    op.create_index('uq_payments_utr_live', 'payments', ['utr'], unique=True, postgresql_where=sa.text("utr IS NOT NULL AND status NOT IN ('REJECTED', 'REVERSED')"), sqlite_where=sa.text("utr IS NOT NULL AND status NOT IN ('REJECTED', 'REVERSED')"))

    op.create_table('allocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('instalment_id', sa.Integer(), nullable=False),
    sa.Column('component', sa.String(length=10), nullable=False),
    sa.Column('amount_paise', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['instalment_id'], ['instalments.id'], name=op.f('fk_allocations_instalment_id_instalments')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_allocations_loan_id_loans')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_allocations_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocations'))
    )
    op.create_index('ix_allocations_instalment_id', 'allocations', ['instalment_id'])
    op.create_index('ix_allocations_loan_id', 'allocations', ['loan_id'])
    op.create_index('ix_allocations_payment_id', 'allocations', ['payment_id'])

    op.create_table('reversals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('amount_paise', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("reason IN ('CHEQUE_BOUNCE', 'WRONG_LOAN', 'DUPLICATE', 'BANK_RETURN', 'OTHER')", name=op.f('ck_reversals_reason_known')),
    sa.CheckConstraint('amount_paise > 0', name=op.f('ck_reversals_amount_positive')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_reversals_payment_id_payments')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_reversals_requested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reversals'))
    )
    op.create_index('ix_reversals_payment_id', 'reversals', ['payment_id'])
    op.create_index('ix_reversals_requested_by_id', 'reversals', ['requested_by_id'])

    op.create_table('approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('reversal_id', sa.Integer(), nullable=True),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('maker_id', sa.Integer(), nullable=True),
    sa.Column('checker_id', sa.Integer(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(kind = 'REVERSAL') = (reversal_id IS NOT NULL)", name=op.f('ck_approvals_reversal_for_reversals')),
    sa.CheckConstraint("kind IN ('BACKDATED_PAYMENT', 'REVERSAL')", name=op.f('ck_approvals_kind_known')),
    sa.CheckConstraint("status IN ('PENDING', 'APPROVED', 'REJECTED')", name=op.f('ck_approvals_status_known')),
    sa.CheckConstraint('checker_id IS NULL OR checker_id <> maker_id', name=op.f('ck_approvals_maker_is_not_checker')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_approvals_branch_id_branches')),
    sa.ForeignKeyConstraint(['checker_id'], ['users.id'], name=op.f('fk_approvals_checker_id_users')),
    sa.ForeignKeyConstraint(['maker_id'], ['users.id'], name=op.f('fk_approvals_maker_id_users')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_approvals_payment_id_payments')),
    sa.ForeignKeyConstraint(['reversal_id'], ['reversals.id'], name=op.f('fk_approvals_reversal_id_reversals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approvals'))
    )
    op.create_index('ix_approvals_branch_id', 'approvals', ['branch_id'])
    op.create_index('ix_approvals_checker_id', 'approvals', ['checker_id'])
    op.create_index('ix_approvals_created_at', 'approvals', ['created_at'])
    op.create_index('ix_approvals_kind', 'approvals', ['kind'])
    op.create_index('ix_approvals_maker_id', 'approvals', ['maker_id'])
    op.create_index('ix_approvals_payment_id', 'approvals', ['payment_id'])
    op.create_index('ix_approvals_reversal_id', 'approvals', ['reversal_id'], unique=True)
    op.create_index('ix_approvals_status', 'approvals', ['status'])
    op.create_index('ix_approvals_status_branch_id_created_at', 'approvals', ['status', 'branch_id', 'created_at'])
    create_guards()


def downgrade() -> None:
    drop_guards()
    for table in ('allocations', 'approvals', 'reversals', 'payments', 'idempotency_records'):
        op.drop_table(table)


# Frozen with this revision.
PAYMENT_FACTS = ("reference", "loan_id", "branch_id", "borrower_id", "amount_paise", "mode", "utr", "cheque_bank",
                 "receipt_number", "value_date", "created_at", "recorded_by_id")
STATUS_MOVE_OK = ("OLD.status = NEW.status OR (OLD.status = 'PENDING_APPROVAL' AND NEW.status IN ('POSTED', 'REJECTED')) "
                  "OR (OLD.status = 'POSTED' AND NEW.status = 'REVERSED')")


def create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _postgresql_guards() -> None:
    # kisht_refuse_change() comes from the foundation revision.
    for table in ("payments", "reversals", "approvals"):
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION kisht_refuse_change()")
    op.execute("CREATE TRIGGER reversals_no_update BEFORE UPDATE ON reversals "
               "FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
    checks = "\n".join(
        f"IF NEW.{c} IS DISTINCT FROM OLD.{c} THEN RAISE EXCEPTION 'kisht: payments.{c} is immutable' "
        f"USING ERRCODE = 'restrict_violation'; END IF;" for c in PAYMENT_FACTS)
    op.execute(f"""
        CREATE FUNCTION kisht_payments_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {checks}
            IF NOT ({STATUS_MOVE_OK}) THEN
                RAISE EXCEPTION 'kisht: payment status cannot move from % to %', OLD.status, NEW.status
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER payments_immutable BEFORE UPDATE ON payments "
               "FOR EACH ROW EXECUTE FUNCTION kisht_payments_immutable()")
    op.execute("""
        CREATE FUNCTION kisht_approvals_decided_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status <> 'PENDING' THEN
                RAISE EXCEPTION 'kisht: a decided approval is immutable' USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER approvals_decided_once BEFORE UPDATE ON approvals "
               "FOR EACH ROW EXECUTE FUNCTION kisht_approvals_decided_once()")


def _sqlite_guards() -> None:
    def refuse(name, event, table, message, when=""):
        op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} {when} "
                   f"BEGIN SELECT RAISE(ABORT, 'kisht: {message}'); END")

    for table in ("payments", "reversals", "approvals"):
        refuse(f"{table}_no_delete", "DELETE", table, f"DELETE on {table} is not allowed")
    refuse("reversals_no_update", "UPDATE", "reversals", "UPDATE on reversals is not allowed")
    for c in PAYMENT_FACTS:
        refuse(f"payments_{c}_immutable", f"UPDATE OF {c}", "payments", f"payments.{c} is immutable",
               when=f"WHEN NEW.{c} IS NOT OLD.{c}")
    refuse("payments_status_moves", "UPDATE OF status", "payments", "payment status cannot move that way",
           when=f"WHEN NOT ({STATUS_MOVE_OK})")
    refuse("approvals_decided_once", "UPDATE", "approvals", "a decided approval is immutable",
           when="WHEN OLD.status <> 'PENDING'")


def drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("payments", "reversals", "approvals"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS reversals_no_update ON reversals")
        op.execute("DROP TRIGGER IF EXISTS payments_immutable ON payments")
        op.execute("DROP TRIGGER IF EXISTS approvals_decided_once ON approvals")
        op.execute("DROP FUNCTION IF EXISTS kisht_payments_immutable()")
        op.execute("DROP FUNCTION IF EXISTS kisht_approvals_decided_once()")
