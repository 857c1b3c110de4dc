"""Dispute forms. Files travel as `evidence` parts of the multipart body, read by the view, checked by the
service (type from the content, size, count); the forms carry no field for status, reviewer or resolver."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField, TextAreaField

from webapp.models.disputes import DISPUTE_CATEGORIES
from webapp.models.payments import REVERSAL_REASONS

try:  # WTForms 3.3 deprecates (value, label) tuples in favour of SelectChoice
    from wtforms.fields.choices import SelectChoice as choice
except ImportError:  # pragma: no cover - older WTForms
    def choice(value, label):
        return value, label


class DisputeForm(FlaskForm):
    payment = SelectField("About", validate_choice=False)  # choices: the loan itself and its payments
    category = SelectField("Category", validate_choice=False, choices=[choice("", "Choose a category")]
                           + [choice(*c) for c in DISPUTE_CATEGORIES.items()])
    description = TextAreaField("What is disputed")
    supersedes = HiddenField()

    def dispute_fields(self) -> dict[str, str]:
        return {name: (self[name].data or "") for name in ("payment", "category", "description", "supersedes")}


class ResolveForm(FlaskForm):
    outcome = RadioField("Outcome", choices=[choice("UPHELD", "Upheld"), choice("REJECTED", "Rejected")],
                         validate_choice=False)
    note = TextAreaField("Resolution note (required)")
    reversal = BooleanField("Also request a reversal of the payment (another person approves it)")
    reversal_amount = StringField("Amount to reverse (₹, empty for all that is left)")
    reversal_reason = SelectField("Reversal reason", validate_choice=False,
                                  choices=[choice(*c) for c in REVERSAL_REASONS.items()])

    def reversal_fields(self) -> dict[str, str] | None:
        if not self.reversal.data:
            return None
        return {"amount": self.reversal_amount.data or "", "reason": self.reversal_reason.data or ""}


class ActionForm(FlaskForm):
    """CSRF only: start review, add evidence."""
