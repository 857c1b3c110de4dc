"""store again the outstanding principal of loans whose advance paid an instalment at day-end

Revision ID: 0014_outstanding_after_advance
Revises: 0013_promises_branch_id
Create Date: 2026-11-28

Day-end marked an instalment paid from money held as advance but left the loan's outstanding principal as
it was, too high until the loan's next payment (fixed in webapp/services/dayend.py). Day-end now lowers it
from the stored figure, so the figures left behind are put right once: the outstanding principal of an
active loan is its instalments' principal still unpaid, as a replay stores it. Data only; nothing to undo.
"""
from alembic import op

revision = "0014_outstanding_after_advance"
down_revision = "0013_promises_branch_id"
branch_labels = None
depends_on = None

UNPAID_PRINCIPAL = ("(SELECT COALESCE(SUM(i.principal_due_paise - i.principal_paid_paise), 0) "
                    "FROM instalments i WHERE i.loan_id = loans.id)")


def upgrade() -> None:
    op.execute(f"UPDATE loans SET outstanding_principal_paise = {UNPAID_PRINCIPAL} "
               f"WHERE status = 'ACTIVE' AND outstanding_principal_paise <> {UNPAID_PRINCIPAL}")


def downgrade() -> None:
    pass
