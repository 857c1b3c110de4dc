"""All models, imported here so Alembic and the app see one metadata."""
from webapp.models.api_tokens import ApiRefreshToken, ApiTokenFamily
from webapp.models.audit import AuditChainHead, AuditEntry
from webapp.models.collections import Contact, Escalation, EscalationNote, LoanScore, Promise
from webapp.models.dayend import CronRun, DayendPosition, FeatureFlag
from webapp.models.disputes import Dispute, DisputeEvidence
from webapp.models.loans import Borrower, Instalment, Loan
from webapp.models.org import Branch, User
from webapp.models.payments import Allocation, Approval, IdempotencyRecord, Payment, Reversal
from webapp.models.reconciliation import (BankStatement, ReconciliationDay, ReconciliationMatch,
                                          ReconciliationMatchPayment, StatementLine, UnreconcileRequest)
from webapp.models.reminders import Reminder
from webapp.models.shadow import CheckRun, GoliveAnswer, ShadowComparison, ShadowImport, ShadowIssue, ShadowRow

__all__ = ["Allocation", "ApiRefreshToken", "ApiTokenFamily", "Approval", "AuditChainHead", "AuditEntry", "Borrower", "Branch", "Contact", "CronRun",
           "DayendPosition", "Dispute", "DisputeEvidence", "Escalation", "EscalationNote", "LoanScore", "Promise",
           "FeatureFlag", "IdempotencyRecord",
           "Instalment", "Loan", "Payment", "Reminder", "Reversal", "User",
           "BankStatement", "ReconciliationDay", "ReconciliationMatch", "ReconciliationMatchPayment", "StatementLine",
           "UnreconcileRequest", "CheckRun", "GoliveAnswer", "ShadowComparison", "ShadowImport", "ShadowIssue",
           "ShadowRow"]
