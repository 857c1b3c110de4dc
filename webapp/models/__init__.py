"""All models, imported here so Alembic and the app see one metadata."""
from webapp.models.audit import AuditChainHead, AuditEntry
from webapp.models.loans import Borrower, Instalment, Loan
from webapp.models.org import Branch, User

__all__ = ["AuditChainHead", "AuditEntry", "Borrower", "Branch", "Instalment", "Loan", "User"]
