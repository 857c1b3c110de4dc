"""Recording payments, receipts and reversal requests."""
from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask_login import current_user

from webapp import clock, db
from webapp.errors import Conflict, ValidationError
from webapp.htmx import redirect_to, render, trigger
from webapp.idempotent import respond_once
from webapp.payments.forms import PaymentForm, ReversalForm
from webapp.permissions import Perm, requires
from webapp.services import approvals, loans, payments

bp = Blueprint("payments", __name__)


@bp.get("/loans/<number>/payments/new")
@requires(Perm.RECORD_PAYMENT)
def new(number: str):
    loan = loans.get_for(db.session(), current_user, number)
    form = PaymentForm(formdata=None, value_date=clock.today_ist().isoformat()).fresh_key()
    return render("payments/new.html", "payments/_form.html", form=form, loan=loan, errors={})


@bp.post("/loans/<number>/payments")
@requires(Perm.RECORD_PAYMENT)
def create(number: str):
    form = PaymentForm()
    loan = loans.get_for(db.session(), current_user, number)
    if not form.validate_on_submit():
        errors = {name: "; ".join(messages) for name, messages in form.errors.items()}
        return render("payments/new.html", "payments/_form.html", 422, form=form, loan=loan, errors=errors)

    def book():
        try:
            booked = payments.record_payment(db.session(), current_user, number, form.payment_fields())
        except (ValidationError, Conflict) as refused:
            message = refused.message if not refused.fields else ""
            return render("payments/new.html", "payments/_form.html", refused.status, form=form, loan=loan,
                          errors=refused.fields, message=message)
        return render("payments/receipt.html", "payments/_receipt.html", 201 if booked.posted else 202,
                      payment=booked.payment, loan=booked.payment.loan, fresh=True)

    response = respond_once(form.idempotency_key.data, {"loan": loan.loan_number, **form.payment_fields()}, book)
    if response.status_code in (201, 202):
        trigger(response, "payment-booked")
    return response


@bp.get("/payments/<reference>")
@requires(Perm.VIEW_LOANS)
def receipt(reference: str):
    payment = payments.get_for(db.session(), current_user, reference)
    return render_template("payments/receipt.html", payment=payment, loan=payment.loan, fresh=False)


@bp.post("/payments/<reference>/reversals")
@requires(Perm.REQUEST_REVERSAL)
def request_reversal(reference: str):
    form = ReversalForm()
    if not form.validate_on_submit():
        raise ValidationError("The reversal is not valid.",
                              fields={k: "; ".join(v) for k, v in form.errors.items()})
    approval = approvals.request_reversal(db.session(), current_user, reference, {
        "amount": form.amount.data, "reason": form.reason.data, "note": form.note.data})
    return redirect_to(url_for("approvals.show", approval_id=approval.id))
