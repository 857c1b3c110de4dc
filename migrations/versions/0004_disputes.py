"""disputes: raise with evidence, review, resolve; immutable once resolved

Revision ID: 0004_disputes
Revises: 0003_dayend
Create Date: 2026-12-01

Guards: no dispute and no evidence row is ever deleted; evidence rows never change and none is added to
a resolved dispute; a dispute's facts (loan, payment, category, description, raiser, …) never change, its
status moves only OPEN → UNDER_REVIEW → RESOLVED_UPHELD | RESOLVED_REJECTED, and once resolved the row
refuses every UPDATE. loans.has_conduct_complaint puts a loan in legal's scope.
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_disputes'
down_revision = '0003_dayend'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('loans', sa.Column('has_conduct_complaint', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index('ix_loans_has_conduct_complaint', 'loans', ['has_conduct_complaint'])

    op.create_table('disputes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('loan_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('raised_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('review_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.Column('reversal_approval_id', sa.Integer(), nullable=True),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.CheckConstraint(f"category IN ({_in(CATEGORIES)})", name=op.f('ck_disputes_category_known')),
    sa.CheckConstraint(f"status IN ({_in(OPEN + RESOLVED)})", name=op.f('ck_disputes_status_known')),
    sa.CheckConstraint('reviewer_id IS NULL OR reviewer_id <> raised_by_id', name=op.f('ck_disputes_reviewer_is_not_raiser')),
    sa.CheckConstraint('resolved_by_id IS NULL OR resolved_by_id <> raised_by_id', name=op.f('ck_disputes_resolver_is_not_raiser')),
    sa.CheckConstraint("status = 'OPEN' OR (reviewer_id IS NOT NULL AND review_started_at IS NOT NULL)", name=op.f('ck_disputes_reviewed_before_resolved')),
    sa.CheckConstraint(f"(status IN ({_in(RESOLVED)})) = (resolved_by_id IS NOT NULL AND resolved_at IS NOT NULL "
                       "AND resolution_note IS NOT NULL)", name=op.f('ck_disputes_resolution_complete')),
    sa.CheckConstraint("reversal_approval_id IS NULL OR (status = 'RESOLVED_UPHELD' AND payment_id IS NOT NULL)", name=op.f('ck_disputes_reversal_only_when_upheld')),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_disputes_branch_id_branches')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_disputes_loan_id_loans')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_disputes_payment_id_payments')),
    sa.ForeignKeyConstraint(['raised_by_id'], ['users.id'], name=op.f('fk_disputes_raised_by_id_users')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_disputes_resolved_by_id_users')),
    sa.ForeignKeyConstraint(['reversal_approval_id'], ['approvals.id'], name=op.f('fk_disputes_reversal_approval_id_approvals')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_disputes_reviewer_id_users')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['disputes.id'], name=op.f('fk_disputes_supersedes_id_disputes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
    sa.UniqueConstraint('reference', name=op.f('uq_disputes_reference'))
    )
    op.create_index('ix_disputes_branch_id', 'disputes', ['branch_id'])
    op.create_index('ix_disputes_category', 'disputes', ['category'])
    op.create_index('ix_disputes_created_at', 'disputes', ['created_at'])
    op.create_index('ix_disputes_loan_id', 'disputes', ['loan_id'])
    op.create_index('ix_disputes_payment_id', 'disputes', ['payment_id'])
    op.create_index('ix_disputes_raised_by_id', 'disputes', ['raised_by_id'])
    op.create_index('ix_disputes_resolved_by_id', 'disputes', ['resolved_by_id'])
    op.create_index('ix_disputes_reversal_approval_id', 'disputes', ['reversal_approval_id'], unique=True)
    op.create_index('ix_disputes_reviewer_id', 'disputes', ['reviewer_id'])
    op.create_index('ix_disputes_status', 'disputes', ['status'])
    op.create_index('ix_disputes_status_branch_id_created_at', 'disputes', ['status', 'branch_id', 'created_at'])
    op.create_index('ix_disputes_supersedes_id', 'disputes', ['supersedes_id'])

    op.create_table('dispute_evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dispute_id', sa.Integer(), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("content_type IN ('application/pdf', 'image/jpeg', 'image/png')", name=op.f('ck_dispute_evidence_content_type_known')),
    sa.CheckConstraint('size_bytes > 0', name=op.f('ck_dispute_evidence_size_positive')),
    sa.CheckConstraint('length(sha256) = 64', name=op.f('ck_dispute_evidence_sha256_hex')),
    sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_dispute_evidence_dispute_id_disputes')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_dispute_evidence_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispute_evidence')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_dispute_evidence_stored_name'))
    )
    op.create_index('ix_dispute_evidence_dispute_id', 'dispute_evidence', ['dispute_id'])
    op.create_index('ix_dispute_evidence_uploaded_by_id', 'dispute_evidence', ['uploaded_by_id'])
    create_guards()


def downgrade() -> None:
    drop_guards()
    op.drop_table('dispute_evidence')
    op.drop_table('disputes')
    op.drop_index('ix_loans_has_conduct_complaint', table_name='loans')
    op.drop_column('loans', 'has_conduct_complaint')


# Frozen with this revision.
CATEGORIES = ('PAYMENT_NOT_CREDITED', 'WRONG_AMOUNT', 'WRONG_LOAN', 'CHARGES', 'CONDUCT_COMPLAINT', 'OTHER')
OPEN = ('OPEN', 'UNDER_REVIEW')
RESOLVED = ('RESOLVED_UPHELD', 'RESOLVED_REJECTED')
DISPUTE_FACTS = ('reference', 'loan_id', 'payment_id', 'branch_id', 'category', 'description', 'raised_by_id',
                 'created_at', 'supersedes_id')
STATUS_MOVE_OK = ("OLD.status = NEW.status OR (OLD.status = 'OPEN' AND NEW.status = 'UNDER_REVIEW') "
                  "OR (OLD.status = 'UNDER_REVIEW' AND NEW.status IN ('RESOLVED_UPHELD', 'RESOLVED_REJECTED'))")


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _postgresql_guards() -> None:
    # kisht_refuse_change() comes from the foundation revision.
    for table in ("disputes", "dispute_evidence"):
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION kisht_refuse_change()")
    op.execute("CREATE TRIGGER dispute_evidence_no_update BEFORE UPDATE ON dispute_evidence "
               "FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
    checks = "\n".join(
        f"IF NEW.{c} IS DISTINCT FROM OLD.{c} THEN RAISE EXCEPTION 'kisht: disputes.{c} is immutable' "
        f"USING ERRCODE = 'restrict_violation'; END IF;" for c in DISPUTE_FACTS)
    op.execute(f"""
        CREATE FUNCTION kisht_disputes_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status IN ({_in(RESOLVED)}) THEN
                RAISE EXCEPTION 'kisht: dispute % is resolved and immutable', OLD.reference
                    USING ERRCODE = 'restrict_violation';
            END IF;
            {checks}
            IF NOT ({STATUS_MOVE_OK}) THEN
                RAISE EXCEPTION 'kisht: dispute status cannot move from % to %', OLD.status, NEW.status
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER disputes_immutable BEFORE UPDATE ON disputes "
               "FOR EACH ROW EXECUTE FUNCTION kisht_disputes_immutable()")
    op.execute(f"""
        CREATE FUNCTION kisht_evidence_open_dispute() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT status FROM disputes WHERE id = NEW.dispute_id) IN ({_in(RESOLVED)}) THEN
                RAISE EXCEPTION 'kisht: evidence cannot be added to a resolved dispute'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER dispute_evidence_open_dispute BEFORE INSERT ON dispute_evidence "
               "FOR EACH ROW EXECUTE FUNCTION kisht_evidence_open_dispute()")


def _sqlite_guards() -> None:
    def refuse(name, event, table, message, when=""):
        op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} {when} "
                   f"BEGIN SELECT RAISE(ABORT, 'kisht: {message}'); END")

    for table in ("disputes", "dispute_evidence"):
        refuse(f"{table}_no_delete", "DELETE", table, f"DELETE on {table} is not allowed")
    refuse("dispute_evidence_no_update", "UPDATE", "dispute_evidence", "UPDATE on dispute_evidence is not allowed")
    refuse("disputes_resolved_immutable", "UPDATE", "disputes", "a resolved dispute is immutable",
           when=f"WHEN OLD.status IN ({_in(RESOLVED)})")
    for c in DISPUTE_FACTS:
        refuse(f"disputes_{c}_immutable", f"UPDATE OF {c}", "disputes", f"disputes.{c} is immutable",
               when=f"WHEN NEW.{c} IS NOT OLD.{c}")
    refuse("disputes_status_moves", "UPDATE OF status", "disputes", "dispute status cannot move that way",
           when=f"WHEN NOT ({STATUS_MOVE_OK})")
    refuse("dispute_evidence_open_dispute", "INSERT", "dispute_evidence",
           "evidence cannot be added to a resolved dispute",
           when=f"WHEN (SELECT status FROM disputes WHERE id = NEW.dispute_id) IN ({_in(RESOLVED)})")


def drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("disputes", "dispute_evidence"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS dispute_evidence_no_update ON dispute_evidence")
        op.execute("DROP TRIGGER IF EXISTS disputes_immutable ON disputes")
        op.execute("DROP TRIGGER IF EXISTS dispute_evidence_open_dispute ON dispute_evidence")
        op.execute("DROP FUNCTION IF EXISTS kisht_disputes_immutable()")
        op.execute("DROP FUNCTION IF EXISTS kisht_evidence_open_dispute()")
    # SQLite drops a table's triggers with the table.
