"""The payment form. It has no field for status, DPD, class or anything the ledger derives."""
import uuid

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from webapp.models.payments import MODES, REVERSAL_REASONS


class PaymentForm(FlaskForm):
    amount = StringField("Amount (₹)", validators=[Length(max=24)])
    mode = SelectField("Mode", choices=list(MODES))
    reference = StringField("UTR / reference", validators=[Length(max=40)])
    cheque_bank = StringField("Cheque bank (IFSC code, e.g. SBIN)", validators=[Length(max=11)])
    receipt_number = StringField("Cash receipt number", validators=[Length(max=40)])
    value_date = StringField("Value date", validators=[Length(max=10)])
    idempotency_key = HiddenField()

    def fresh_key(self):
        self.idempotency_key.data = uuid.uuid4().hex
        return self

    def payment_fields(self) -> dict[str, str]:
        return {name: (self[name].data or "") for name in
                ("amount", "mode", "reference", "cheque_bank", "receipt_number", "value_date")}


class ReversalForm(FlaskForm):
    amount = StringField("Amount to reverse (₹, empty for all)", validators=[Length(max=24)])
    reason = SelectField("Reason", choices=list(REVERSAL_REASONS))
    note = TextAreaField("Note", validators=[Length(max=500)])


class DecisionForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[Length(max=500)])
