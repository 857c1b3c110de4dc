"""THE role → permission matrix and data-scope rules (DESIGN.md §6). Everything reads this one table.

Views declare what they need with @requires(Perm.X) (or @public); a test walks every route × every role
against MATRIX. Objects outside a user's scope answer 404, never 403, so their existence is not revealed.
"""
from __future__ import annotations

from enum import StrEnum
from functools import wraps

from flask_login import current_user
from sqlalchemy import false, or_, true

from webapp.errors import Forbidden, Unauthorized


class Perm(StrEnum):
    VIEW_LOANS = "view_loans"
    CREATE_LOANS = "create_loans"  # admin screen, CSV import; amount and schedule are fixed at creation
    ASSIGN_COLLECTOR = "assign_collector"
    RECORD_PAYMENT = "record_payment"
    APPROVE_BACKDATED = "approve_backdated"
    REQUEST_REVERSAL = "request_reversal"
    APPROVE_REVERSAL = "approve_reversal"
    RAISE_DISPUTE = "raise_dispute"
    RESOLVE_DISPUTE = "resolve_dispute"
    RECONCILE = "reconcile"
    READ_AUDIT = "read_audit"
    LOG_CONTACT = "log_contact"  # calls, visits and promises to pay
    WORK_ESCALATIONS = "work_escalations"  # the manager's and legal's review queues
    ADMINISTER = "administer"  # kill switches, users, branches, jobs, backups
    SHADOW_IMPORT = "shadow_import"  # import the Excel tracker, compare again (shadow month)
    VIEW_SHADOW = "view_shadow"  # the convergence dashboard, variance lists, the issue log
    WORK_SHADOW_ISSUES = "work_shadow_issues"  # raise, assign and resolve shadow-month issues
    VIEW_GOLIVE = "view_golive"  # the go/no-go board (recording answers and sign-offs needs ADMINISTER)


P = Perm
MATRIX: dict[str, frozenset[Perm]] = {
    "collector": frozenset({P.VIEW_LOANS, P.RECORD_PAYMENT, P.RAISE_DISPUTE, P.LOG_CONTACT}),
    "manager": frozenset({P.VIEW_LOANS, P.RECORD_PAYMENT, P.APPROVE_BACKDATED, P.REQUEST_REVERSAL,
                          P.APPROVE_REVERSAL, P.RAISE_DISPUTE, P.RESOLVE_DISPUTE, P.READ_AUDIT,
                          P.ASSIGN_COLLECTOR, P.LOG_CONTACT, P.WORK_ESCALATIONS, P.VIEW_SHADOW, P.VIEW_GOLIVE}),
    "finance": frozenset({P.VIEW_LOANS, P.RECORD_PAYMENT, P.REQUEST_REVERSAL, P.APPROVE_REVERSAL,
                          P.RAISE_DISPUTE, P.RECONCILE, P.READ_AUDIT, P.SHADOW_IMPORT, P.VIEW_SHADOW,
                          P.WORK_SHADOW_ISSUES, P.VIEW_GOLIVE}),
    "legal": frozenset({P.VIEW_LOANS, P.RAISE_DISPUTE, P.RESOLVE_DISPUTE, P.READ_AUDIT, P.WORK_ESCALATIONS}),
    "admin": frozenset({P.VIEW_LOANS, P.CREATE_LOANS, P.ASSIGN_COLLECTOR, P.READ_AUDIT, P.ADMINISTER, P.SHADOW_IMPORT,
                        P.VIEW_SHADOW, P.WORK_SHADOW_ISSUES, P.VIEW_GOLIVE}),
}

# Which loans each role sees: assigned to them, their branch, all, or the NPA queue. Legal's "npa" scope
# also holds every loan that carries a conduct complaint (loans.has_conduct_complaint, set by the disputes
# service when one is raised), whatever its class.
LOAN_SCOPE = {"collector": "assigned", "manager": "branch", "finance": "all", "legal": "npa", "admin": "all"}
# Which audit entries a reader sees.
AUDIT_SCOPE = {"manager": "branch", "finance": "all", "legal": "all", "admin": "all"}


def can(user, perm: Perm) -> bool:
    return bool(user and getattr(user, "is_authenticated", False) and perm in MATRIX.get(user.role, ()))


def require(user, perm: Perm) -> None:
    if not getattr(user, "is_authenticated", False):
        raise Unauthorized("Please sign in.")
    if not can(user, perm):
        raise Forbidden("You do not have permission to do that.")


def loan_filter(user):
    """A SQL condition selecting the loans `user` may see."""
    from webapp.models import Loan

    scope = LOAN_SCOPE.get(getattr(user, "role", None))
    if scope == "all":
        return true()
    if scope == "branch":
        return Loan.branch_id == user.branch_id
    if scope == "assigned":
        return Loan.collector_id == user.id
    if scope == "npa":
        return or_(Loan.asset_class == "NPA", Loan.has_conduct_complaint.is_(True))
    return false()


def in_scope(query, user, model):
    """`query` of `model` rows (each belongs to a loan and carries its loan's branch, which never changes)
    cut to the rows of loans `user` may see: a branch's staff by the row's own branch, without a join to
    the loans, everyone else through the loan."""
    from webapp.models import Loan

    if LOAN_SCOPE.get(getattr(user, "role", None)) == "branch":
        return query.where(model.branch_id == user.branch_id)
    return query.join(Loan, Loan.id == model.loan_id).where(loan_filter(user))


def loan_scope_key(user) -> tuple:
    """What loan_filter(user) depends on: users with the same key see the same loans."""
    scope = LOAN_SCOPE.get(getattr(user, "role", None))
    return scope, user.branch_id if scope == "branch" else user.id if scope == "assigned" else None


def loan_visible(user, loan) -> bool:
    scope = LOAN_SCOPE.get(getattr(user, "role", None))
    return (
        scope == "all"
        or (scope == "branch" and loan.branch_id == user.branch_id)
        or (scope == "assigned" and loan.collector_id == user.id)
        or (scope == "npa" and (loan.asset_class == "NPA" or bool(loan.has_conduct_complaint)))
    )


def audit_filter(user):
    from webapp.models import AuditEntry

    scope = AUDIT_SCOPE.get(getattr(user, "role", None))
    if scope == "all":
        return true()
    if scope == "branch":
        return AuditEntry.branch_id == user.branch_id
    return false()


def requires(perm: Perm):
    """Route decorator: signed in and holding `perm`. Recorded on the view for the route walk test."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            require(current_user, perm)
            return view(*args, **kwargs)

        wrapper.kisht_permission = perm
        return wrapper

    return decorate


def requires_any(*perms: Perm):
    """Route decorator: signed in and holding at least one of `perms` (a shared screen like the inbox)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not getattr(current_user, "is_authenticated", False):
                raise Unauthorized("Please sign in.")
            if not any(can(current_user, perm) for perm in perms):
                raise Forbidden("You do not have permission to do that.")
            return view(*args, **kwargs)

        wrapper.kisht_permission = ("any", perms)
        return wrapper

    return decorate


def signed_in(view):
    """Route decorator: any signed-in user (their own home, their own logout)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not getattr(current_user, "is_authenticated", False):
            raise Unauthorized("Please sign in.")
        return view(*args, **kwargs)

    wrapper.kisht_permission = "signed_in"
    return wrapper


def public(view):
    """Route decorator: open to everyone (login page, health checks)."""
    view.kisht_permission = "public"
    return view


def home_of(role: str):
    """Route decorator: a role's own landing screen, open to that role only."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not getattr(current_user, "is_authenticated", False):
                raise Unauthorized("Please sign in.")
            if current_user.role != role:
                raise Forbidden("This screen belongs to another role.")
            return view(*args, **kwargs)

        wrapper.kisht_permission = ("home", role)
        return wrapper

    return decorate


class SystemActor:
    """The operator at the command line or a scheduled job: admin's permissions, recorded by label."""

    is_authenticated = True
    role = "admin"
    id = None
    branch_id = None
    active = True

    def __init__(self, label: str = "system"):
        self.username = label
