"""reconciliation: bank statements, statement lines, matches, unreconcile requests, daily closes

Revision ID: 0007_reconciliation
Revises: 0006_reminders
Create Date: 2026-11-30

Adds payments.reconciled_at: set while a confirmed match holds the payment. Guards (PostgreSQL and SQLite):

* a reconciled payment's status never changes and it takes no new reversal; it is marked reconciled only
  while POSTED, held by a confirmed match and without a pending reversal, and released only once no
  confirmed match holds it;
* a confirmed match moves only to UNRECONCILED, and only when an APPROVED unreconcile request for it
  exists (maker ≠ checker is a CHECK); other moves: SUGGESTED → CONFIRMED | DISMISSED | SUPERSEDED,
  MISMATCH → DISMISSED | SUPERSEDED; final statuses never change; payments join a match only while it is
  SUGGESTED or a MISMATCH;
* a statement line's facts never change; it is MATCHED exactly while a confirmed match holds it;
* statements, match payments and daily closes never change; nothing here is ever deleted; a decided
  unreconcile request is immutable.
"""
from alembic import op
import sqlalchemy as sa

revision = '0007_reconciliation'
down_revision = '0006_reminders'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bank_statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('bank', sa.String(length=16), nullable=False),
    sa.Column('account_number', sa.String(length=34), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('file_format', sa.String(length=4), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('period_from', sa.Date(), nullable=False),
    sa.Column('period_to', sa.Date(), nullable=False),
    sa.Column('line_count', sa.Integer(), nullable=False),
    sa.Column('credit_count', sa.Integer(), nullable=False),
    sa.Column('debit_count', sa.Integer(), nullable=False),
    sa.Column('credit_total_paise', sa.BigInteger(), nullable=False),
    sa.Column('debit_total_paise', sa.BigInteger(), nullable=False),
    sa.Column('opening_balance_paise', sa.BigInteger(), nullable=True),
    sa.Column('closing_balance_paise', sa.BigInteger(), nullable=True),
    sa.Column('skipped_duplicates', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.Text(), nullable=True),
    sa.Column('imported_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("file_format IN ('CSV', 'XLSX')", name=op.f('ck_bank_statements_file_format_known')),
    sa.CheckConstraint('length(sha256) = 64', name=op.f('ck_bank_statements_sha256_hex')),
    sa.CheckConstraint('line_count = credit_count + debit_count AND line_count > 0', name=op.f('ck_bank_statements_counts_add_up')),
    sa.CheckConstraint('period_from <= period_to', name=op.f('ck_bank_statements_period_ordered')),
    sa.ForeignKeyConstraint(['imported_by_id'], ['users.id'], name=op.f('fk_bank_statements_imported_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_statements')),
    sa.UniqueConstraint('reference', name=op.f('uq_bank_statements_reference')),
    sa.UniqueConstraint('sha256', name=op.f('uq_bank_statements_sha256'))
    )
    op.create_index('ix_bank_statements_bank_account_number_period_to', 'bank_statements', ['bank', 'account_number', 'period_to'])
    op.create_index('ix_bank_statements_created_at', 'bank_statements', ['created_at'])
    op.create_index('ix_bank_statements_imported_by_id', 'bank_statements', ['imported_by_id'])
    op.create_index('ix_bank_statements_period_from', 'bank_statements', ['period_from'])
    op.create_index('ix_bank_statements_period_to', 'bank_statements', ['period_to'])

    op.create_table('reconciliation_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_reconciliation_days_closed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_days')),
    sa.UniqueConstraint('business_date', name=op.f('uq_reconciliation_days_business_date'))
    )
    op.create_index('ix_reconciliation_days_closed_by_id', 'reconciliation_days', ['closed_by_id'])

    op.create_table('statement_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('txn_date', sa.Date(), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=False),
    sa.Column('narration', sa.Text(), nullable=False),
    sa.Column('bank_reference', sa.String(length=64), nullable=True),
    sa.Column('utr', sa.String(length=32), nullable=True),
    sa.Column('utr_source', sa.String(length=10), nullable=True),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('direction', sa.String(length=6), nullable=False),
    sa.Column('amount_paise', sa.BigInteger(), nullable=False),
    sa.Column('balance_paise', sa.BigInteger(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(direction = 'DEBIT') = (status = 'DEBIT')", name=op.f('ck_statement_lines_debits_never_match')),
    sa.CheckConstraint("direction IN ('CREDIT', 'DEBIT')", name=op.f('ck_statement_lines_direction_known')),
    sa.CheckConstraint("mode IN ('NEFT', 'RTGS', 'IMPS', 'UPI', 'CASH', 'CHEQUE', 'OTHER')", name=op.f('ck_statement_lines_mode_known')),
    sa.CheckConstraint("status IN ('UNMATCHED', 'MATCHED', 'MISMATCH', 'DEBIT')", name=op.f('ck_statement_lines_status_known')),
    sa.CheckConstraint("utr_source IS NULL OR utr_source IN ('REFERENCE', 'NARRATION')", name=op.f('ck_statement_lines_utr_source_known')),
    sa.CheckConstraint('(utr IS NULL) = (utr_source IS NULL)', name=op.f('ck_statement_lines_utr_has_source')),
    sa.CheckConstraint('amount_paise > 0', name=op.f('ck_statement_lines_amount_positive')),
    sa.ForeignKeyConstraint(['statement_id'], ['bank_statements.id'], name=op.f('fk_statement_lines_statement_id_bank_statements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_lines')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_statement_lines_fingerprint'))
    )
    op.create_index('ix_statement_lines_status_value_date', 'statement_lines', ['status', 'value_date'])
    op.create_index('ix_statement_lines_utr', 'statement_lines', ['utr'])
    op.create_index('ix_statement_lines_value_date_mode', 'statement_lines', ['value_date', 'mode'])
    op.create_index('uq_statement_lines_statement_id_row_number', 'statement_lines', ['statement_id', 'row_number'], unique=True)

    op.create_table('reconciliation_matches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('line_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('amount_paise', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('UTR', 'AMOUNT_DATE', 'CASH_DEPOSIT', 'MANUAL', 'FROM_LINE')", name=op.f('ck_reconciliation_matches_kind_known')),
    sa.CheckConstraint("status IN ('SUGGESTED', 'CONFIRMED', 'DISMISSED', 'SUPERSEDED', 'MISMATCH', 'UNRECONCILED')", name=op.f('ck_reconciliation_matches_status_known')),
    sa.CheckConstraint("status IN ('SUGGESTED', 'MISMATCH') OR (decided_at IS NOT NULL)", name=op.f('ck_reconciliation_matches_decided_when_decided')),
    sa.CheckConstraint('amount_paise > 0', name=op.f('ck_reconciliation_matches_amount_positive')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_reconciliation_matches_created_by_id_users')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_reconciliation_matches_decided_by_id_users')),
    sa.ForeignKeyConstraint(['line_id'], ['statement_lines.id'], name=op.f('fk_reconciliation_matches_line_id_statement_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_matches'))
    )
    op.create_index('ix_reconciliation_matches_created_by_id', 'reconciliation_matches', ['created_by_id'])
    op.create_index('ix_reconciliation_matches_decided_by_id', 'reconciliation_matches', ['decided_by_id'])
    op.create_index('ix_reconciliation_matches_line_id', 'reconciliation_matches', ['line_id'])
    op.create_index('ix_reconciliation_matches_status_created_at', 'reconciliation_matches', ['status', 'created_at'])
    op.create_index('uq_reconciliation_matches_line_id_holding', 'reconciliation_matches', ['line_id'], unique=True,
                    postgresql_where=sa.text("status IN ('CONFIRMED', 'MISMATCH')"),
                    sqlite_where=sa.text("status IN ('CONFIRMED', 'MISMATCH')"))

    op.create_table('reconciliation_match_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('match_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['match_id'], ['reconciliation_matches.id'], name=op.f('fk_reconciliation_match_payments_match_id_reconciliation_matches')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_reconciliation_match_payments_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_match_payments'))
    )
    op.create_index('ix_reconciliation_match_payments_payment_id', 'reconciliation_match_payments', ['payment_id'])
    op.create_index('uq_reconciliation_match_payments_match_id_payment_id', 'reconciliation_match_payments', ['match_id', 'payment_id'], unique=True)

    op.create_table('unreconcile_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('match_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('maker_id', sa.Integer(), nullable=False),
    sa.Column('checker_id', sa.Integer(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'PENDING') = (checker_id IS NULL AND decided_at IS NULL)", name=op.f('ck_unreconcile_requests_decision_complete')),
    sa.CheckConstraint("status IN ('PENDING', 'APPROVED', 'REJECTED')", name=op.f('ck_unreconcile_requests_status_known')),
    sa.CheckConstraint('checker_id IS NULL OR checker_id <> maker_id', name=op.f('ck_unreconcile_requests_maker_is_not_checker')),
    sa.ForeignKeyConstraint(['checker_id'], ['users.id'], name=op.f('fk_unreconcile_requests_checker_id_users')),
    sa.ForeignKeyConstraint(['maker_id'], ['users.id'], name=op.f('fk_unreconcile_requests_maker_id_users')),
    sa.ForeignKeyConstraint(['match_id'], ['reconciliation_matches.id'], name=op.f('fk_unreconcile_requests_match_id_reconciliation_matches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unreconcile_requests'))
    )
    op.create_index('ix_unreconcile_requests_checker_id', 'unreconcile_requests', ['checker_id'])
    op.create_index('ix_unreconcile_requests_maker_id', 'unreconcile_requests', ['maker_id'])
    op.create_index('ix_unreconcile_requests_match_id', 'unreconcile_requests', ['match_id'])
    op.create_index('ix_unreconcile_requests_status_created_at', 'unreconcile_requests', ['status', 'created_at'])
    op.create_index('uq_unreconcile_requests_match_id_pending', 'unreconcile_requests', ['match_id'], unique=True,
                    postgresql_where=sa.text("status = 'PENDING'"), sqlite_where=sa.text("status = 'PENDING'"))

    op.add_column('payments', sa.Column('reconciled_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_payments_reconciled_at', 'payments', ['reconciled_at'])
    create_guards()


def downgrade() -> None:
    drop_guards()
    op.drop_index('ix_payments_reconciled_at', table_name='payments')
    op.drop_column('payments', 'reconciled_at')
    for table in ('unreconcile_requests', 'reconciliation_match_payments', 'reconciliation_matches', 'statement_lines',
                  'reconciliation_days', 'bank_statements'):
        op.drop_table(table)


# Frozen with this revision.
TABLES = ('bank_statements', 'statement_lines', 'reconciliation_matches', 'reconciliation_match_payments',
          'unreconcile_requests', 'reconciliation_days')
APPEND_ONLY = ('bank_statements', 'reconciliation_match_payments', 'reconciliation_days')
LINE_FACTS = ('statement_id', 'row_number', 'txn_date', 'value_date', 'narration', 'bank_reference', 'utr',
              'utr_source', 'mode', 'direction', 'amount_paise', 'balance_paise', 'fingerprint', 'created_at')
MATCH_FACTS = ('line_id', 'kind', 'amount_paise', 'created_by_id', 'created_at')
REQUEST_FACTS = ('match_id', 'reason', 'maker_id', 'created_at')
FINAL = "('DISMISSED', 'SUPERSEDED', 'UNRECONCILED')"
MATCH_MOVE_OK = ("OLD.status = NEW.status OR (OLD.status = 'SUGGESTED' AND NEW.status IN ('CONFIRMED', 'DISMISSED', "
                 "'SUPERSEDED')) OR (OLD.status = 'MISMATCH' AND NEW.status IN ('DISMISSED', 'SUPERSEDED'))")


def _confirmed_match_holds_payment(payment: str) -> str:
    return ("EXISTS (SELECT 1 FROM reconciliation_match_payments mp JOIN reconciliation_matches m "
            f"ON m.id = mp.match_id WHERE mp.payment_id = {payment} AND m.status = 'CONFIRMED')")


def _pending_reversal(payment: str) -> str:
    return ("EXISTS (SELECT 1 FROM reversals r JOIN approvals a ON a.reversal_id = r.id "
            f"WHERE r.payment_id = {payment} AND a.status = 'PENDING')")


def _confirmed_match_holds_line(line: str) -> str:
    return f"EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.line_id = {line} AND m.status = 'CONFIRMED')"


def _approved_unreconcile(match: str) -> str:
    return f"EXISTS (SELECT 1 FROM unreconcile_requests r WHERE r.match_id = {match} AND r.status = 'APPROVED')"


MATCH_OPEN_FOR_PAYMENTS = "(SELECT status FROM reconciliation_matches WHERE id = NEW.match_id) IN ('SUGGESTED', 'MISMATCH')"


def create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _raise(message: str, *args: str) -> str:
    arguments = "".join(f", {a}" for a in args)
    return f"RAISE EXCEPTION 'kisht: {message}'{arguments} USING ERRCODE = 'restrict_violation';"


def _pg_facts(table: str, columns) -> str:
    return "\n".join(f"IF NEW.{c} IS DISTINCT FROM OLD.{c} THEN {_raise(f'{table}.{c} is immutable')} END IF;"
                     for c in columns)


def _pg_function(name: str, body: str) -> None:
    op.execute(f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {body}
            RETURN NEW;
        END $$""")


def _postgresql_guards() -> None:
    # kisht_refuse_change() comes from the foundation revision.
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION kisht_refuse_change()")
    for table in APPEND_ONLY:
        op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION kisht_refuse_change()")

    _pg_function("kisht_payments_reconciled", f"""
        IF OLD.reconciled_at IS NOT NULL THEN
            IF NEW.status IS DISTINCT FROM OLD.status THEN
                {_raise('payment % is reconciled and locked; only an approved unreconcile releases it', 'OLD.reference')}
            END IF;
            IF NEW.reconciled_at IS NULL THEN
                IF {_confirmed_match_holds_payment('OLD.id')} THEN
                    {_raise('payment % is reconciled and locked; only an approved unreconcile releases it', 'OLD.reference')}
                END IF;
            ELSIF NEW.reconciled_at IS DISTINCT FROM OLD.reconciled_at THEN
                {_raise('payments.reconciled_at is immutable while reconciled')}
            END IF;
        ELSIF NEW.reconciled_at IS NOT NULL THEN
            IF NEW.status <> 'POSTED' OR NOT {_confirmed_match_holds_payment('NEW.id')}
               OR {_pending_reversal('NEW.id')} THEN
                {_raise('payment % can be marked reconciled only while posted, held by a confirmed match and without a pending reversal', 'NEW.reference')}
            END IF;
        END IF;""")
    op.execute("CREATE TRIGGER payments_reconciled BEFORE UPDATE ON payments "
               "FOR EACH ROW EXECUTE FUNCTION kisht_payments_reconciled()")

    _pg_function("kisht_reversals_not_reconciled", f"""
        IF (SELECT reconciled_at FROM payments WHERE id = NEW.payment_id) IS NOT NULL THEN
            {_raise('a reconciled payment cannot be reversed')}
        END IF;""")
    op.execute("CREATE TRIGGER reversals_not_reconciled BEFORE INSERT ON reversals "
               "FOR EACH ROW EXECUTE FUNCTION kisht_reversals_not_reconciled()")

    _pg_function("kisht_statement_lines_guarded", f"""
        {_pg_facts('statement_lines', LINE_FACTS)}
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            IF NEW.status = 'MATCHED' AND NOT {_confirmed_match_holds_line('NEW.id')} THEN
                {_raise('a statement line is MATCHED only while a confirmed match holds it')}
            END IF;
            IF OLD.status = 'MATCHED' AND {_confirmed_match_holds_line('OLD.id')} THEN
                {_raise('statement line % is reconciled; only an approved unreconcile releases it', 'OLD.id')}
            END IF;
        END IF;""")
    op.execute("CREATE TRIGGER statement_lines_guarded BEFORE UPDATE ON statement_lines "
               "FOR EACH ROW EXECUTE FUNCTION kisht_statement_lines_guarded()")

    _pg_function("kisht_reconciliation_matches_guarded", f"""
        IF OLD.status IN {FINAL} THEN
            {_raise('a % match is final', 'OLD.status')}
        END IF;
        {_pg_facts('reconciliation_matches', MATCH_FACTS)}
        IF OLD.status = 'CONFIRMED' THEN
            IF NEW.status <> 'UNRECONCILED' OR NEW.decided_by_id IS DISTINCT FROM OLD.decided_by_id
               OR NEW.decided_at IS DISTINCT FROM OLD.decided_at OR NEW.note IS DISTINCT FROM OLD.note
               OR NOT {_approved_unreconcile('OLD.id')} THEN
                {_raise('match % is confirmed and locked; only an approved unreconcile releases it', 'OLD.id')}
            END IF;
        ELSIF NOT ({MATCH_MOVE_OK}) THEN
            {_raise('match status cannot move from % to %', 'OLD.status', 'NEW.status')}
        END IF;""")
    op.execute("CREATE TRIGGER reconciliation_matches_guarded BEFORE UPDATE ON reconciliation_matches "
               "FOR EACH ROW EXECUTE FUNCTION kisht_reconciliation_matches_guarded()")

    _pg_function("kisht_match_payments_open_match", f"""
        IF NOT ({MATCH_OPEN_FOR_PAYMENTS}) THEN
            {_raise('payments join a match only while it is suggested or a mismatch')}
        END IF;""")
    op.execute("CREATE TRIGGER reconciliation_match_payments_open_match BEFORE INSERT ON reconciliation_match_payments "
               "FOR EACH ROW EXECUTE FUNCTION kisht_match_payments_open_match()")

    _pg_function("kisht_unreconcile_requests_guarded", f"""
        IF OLD.status <> 'PENDING' THEN
            {_raise('a decided unreconcile request is immutable')}
        END IF;
        {_pg_facts('unreconcile_requests', REQUEST_FACTS)}""")
    op.execute("CREATE TRIGGER unreconcile_requests_guarded BEFORE UPDATE ON unreconcile_requests "
               "FOR EACH ROW EXECUTE FUNCTION kisht_unreconcile_requests_guarded()")


def _sqlite_guards() -> None:
    def refuse(name, event, table, message, when=""):
        op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} {when} "
                   f"BEGIN SELECT RAISE(ABORT, 'kisht: {message}'); END")

    for table in TABLES:
        refuse(f"{table}_no_delete", "DELETE", table, f"DELETE on {table} is not allowed")
    for table in APPEND_ONLY:
        refuse(f"{table}_no_update", "UPDATE", table, f"UPDATE on {table} is not allowed")

    refuse("payments_reconciled_status", "UPDATE OF status", "payments",
           "a reconciled payment is locked; only an approved unreconcile releases it",
           when="WHEN OLD.reconciled_at IS NOT NULL AND NEW.status IS NOT OLD.status")
    refuse("payments_reconciled_release", "UPDATE OF reconciled_at", "payments",
           "a reconciled payment is locked; only an approved unreconcile releases it",
           when=("WHEN OLD.reconciled_at IS NOT NULL AND ((NEW.reconciled_at IS NOT NULL AND "
                 "NEW.reconciled_at IS NOT OLD.reconciled_at) OR (NEW.reconciled_at IS NULL AND "
                 f"{_confirmed_match_holds_payment('OLD.id')}))"))
    refuse("payments_reconciled_mark", "UPDATE OF reconciled_at", "payments",
           "a payment can be marked reconciled only while posted, held by a confirmed match and without a "
           "pending reversal",
           when=("WHEN OLD.reconciled_at IS NULL AND NEW.reconciled_at IS NOT NULL AND (NEW.status <> 'POSTED' "
                 f"OR NOT {_confirmed_match_holds_payment('NEW.id')} OR {_pending_reversal('NEW.id')})"))
    refuse("reversals_not_reconciled", "INSERT", "reversals", "a reconciled payment cannot be reversed",
           when="WHEN (SELECT reconciled_at FROM payments WHERE id = NEW.payment_id) IS NOT NULL")

    for c in LINE_FACTS:
        refuse(f"statement_lines_{c}_immutable", f"UPDATE OF {c}", "statement_lines",
               f"statement_lines.{c} is immutable", when=f"WHEN NEW.{c} IS NOT OLD.{c}")
    refuse("statement_lines_matched_held", "UPDATE OF status", "statement_lines",
           "a statement line is MATCHED only while a confirmed match holds it",
           when=f"WHEN NEW.status = 'MATCHED' AND OLD.status <> 'MATCHED' AND NOT {_confirmed_match_holds_line('NEW.id')}")
    refuse("statement_lines_matched_locked", "UPDATE OF status", "statement_lines",
           "a reconciled statement line is locked; only an approved unreconcile releases it",
           when=f"WHEN OLD.status = 'MATCHED' AND NEW.status <> 'MATCHED' AND {_confirmed_match_holds_line('OLD.id')}")

    refuse("reconciliation_matches_final", "UPDATE", "reconciliation_matches", "a dismissed, superseded or "
           "unreconciled match is final", when=f"WHEN OLD.status IN {FINAL}")
    for c in MATCH_FACTS:
        refuse(f"reconciliation_matches_{c}_immutable", f"UPDATE OF {c}", "reconciliation_matches",
               f"reconciliation_matches.{c} is immutable", when=f"WHEN NEW.{c} IS NOT OLD.{c}")
    refuse("reconciliation_matches_confirmed_locked", "UPDATE", "reconciliation_matches",
           "a confirmed match is locked; only an approved unreconcile releases it",
           when=("WHEN OLD.status = 'CONFIRMED' AND (NEW.status <> 'UNRECONCILED' "
                 "OR NEW.decided_by_id IS NOT OLD.decided_by_id OR NEW.decided_at IS NOT OLD.decided_at "
                 f"OR NEW.note IS NOT OLD.note OR NOT {_approved_unreconcile('OLD.id')})"))
    refuse("reconciliation_matches_status_moves", "UPDATE OF status", "reconciliation_matches",
           "match status cannot move that way", when=f"WHEN OLD.status <> 'CONFIRMED' AND NOT ({MATCH_MOVE_OK})")
    refuse("reconciliation_match_payments_open_match", "INSERT", "reconciliation_match_payments",
           "payments join a match only while it is suggested or a mismatch", when=f"WHEN NOT ({MATCH_OPEN_FOR_PAYMENTS})")

    refuse("unreconcile_requests_decided_once", "UPDATE", "unreconcile_requests",
           "a decided unreconcile request is immutable", when="WHEN OLD.status <> 'PENDING'")
    for c in REQUEST_FACTS:
        refuse(f"unreconcile_requests_{c}_immutable", f"UPDATE OF {c}", "unreconcile_requests",
               f"unreconcile_requests.{c} is immutable", when=f"WHEN NEW.{c} IS NOT OLD.{c}")


def drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update ON {table}")
        for trigger, table in (("payments_reconciled", "payments"), ("reversals_not_reconciled", "reversals"),
                               ("statement_lines_guarded", "statement_lines"),
                               ("reconciliation_matches_guarded", "reconciliation_matches"),
                               ("reconciliation_match_payments_open_match", "reconciliation_match_payments"),
                               ("unreconcile_requests_guarded", "unreconcile_requests")):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for function in ("kisht_payments_reconciled", "kisht_reversals_not_reconciled", "kisht_statement_lines_guarded",
                         "kisht_reconciliation_matches_guarded", "kisht_match_payments_open_match",
                         "kisht_unreconcile_requests_guarded"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        # SQLite drops a table's triggers with the table; these live on tables that stay.
        for trigger in ("payments_reconciled_status", "payments_reconciled_release", "payments_reconciled_mark",
                        "reversals_not_reconciled"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
