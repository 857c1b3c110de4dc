"""Admin: create and import loans, assign collectors, see users."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from webapp import clock, db
from webapp.admin.forms import AssignCollectorForm, ImportLoansForm, NewLoanForm
from webapp.errors import ValidationError
from webapp.htmx import redirect_to, render
from webapp.loans.routes import render_loan_list
from webapp.models import Branch, User
from webapp.permissions import Perm, home_of, requires
from webapp.services import loans

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@home_of("admin")
def home():
    summary = loans.portfolio_summary(db.session(), current_user)
    return render_loan_list("admin/home.html", summary=summary)


@bp.route("/loans/new", methods=["GET", "POST"])
@requires(Perm.CREATE_LOANS)
def new_loan():
    form = NewLoanForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            loan = loans.create_loan(db.session(), current_user, form.loan_fields())
            return redirect_to(url_for("loans.show", number=loan.loan_number))
        except ValidationError as error:
            db.session().rollback()
            errors = error.fields
    elif request.method == "POST":
        errors = {name: "; ".join(messages) for name, messages in form.errors.items()}
    status = 422 if errors else 200
    return render("admin/new_loan.html", "admin/_new_loan_form.html", status=status, form=form, errors=errors)


@bp.route("/loans/import", methods=["GET", "POST"])
@requires(Perm.CREATE_LOANS)
def import_loans():
    form = ImportLoansForm()
    result, error = None, None
    if form.validate_on_submit():
        upload = form.file.data
        try:
            result = loans.import_csv(db.session(), current_user, upload.read(), filename=upload.filename or "upload.csv")
        except ValidationError as refused:
            db.session().rollback()
            error = refused
        except UnicodeDecodeError:
            error = ValidationError("The file is not UTF-8 text.", fields={"file": "must be a UTF-8 CSV file"})
    elif request.method == "POST":
        error = ValidationError("Choose a CSV file to import.", fields={"file": "is required"})
    status = 422 if error else 200
    return render_template("admin/import.html", form=form, result=result, error=error,
                           columns=loans.CSV_COLUMNS + loans.CSV_OPTIONAL), status


@bp.post("/loans/<number>/collector")
@requires(Perm.ASSIGN_COLLECTOR)
def assign_collector(number: str):
    form = AssignCollectorForm()
    if not form.validate_on_submit():
        raise ValidationError("The form is not valid.", fields={k: "; ".join(v) for k, v in form.errors.items()})
    loans.update_loan(db.session(), current_user, number, {"collector_username": form.collector_username.data})
    return redirect(url_for("loans.show", number=number))


@bp.get("/users")
@requires(Perm.ADMINISTER)
def users():
    session = db.session()
    people = session.scalars(select(User).order_by(User.username).limit(500)).all()
    branches = session.scalars(select(Branch).order_by(Branch.code)).all()
    return render_template("admin/users.html", users=people, branches=branches, now_utc=clock.now())


from webapp.admin import jobs_routes  # noqa: E402,F401  (day-end runs and kill switches, on this blueprint)
