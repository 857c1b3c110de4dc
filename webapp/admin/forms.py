"""Admin forms. There is deliberately no field for status, DPD, class, bucket or the schedule."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import StringField
from wtforms.validators import Length


def _text(label: str, max_length: int = 120):
    return StringField(label, validators=[Length(max=max_length)])


class NewLoanForm(FlaskForm):
    loan_number = _text("Loan number", 32)
    borrower_name = _text("Borrower name")
    borrower_phone = _text("Borrower mobile", 20)
    borrower_language = _text("Preferred language (en, hi, mr, …)", 16)
    borrower_email = _text("Borrower email (optional)", 254)
    branch_code = _text("Branch code", 16)
    collector_username = _text("Collector username (optional)", 64)
    principal = _text("Loan amount (₹)", 20)
    annual_rate = _text("Annual rate (%)", 8)
    tenure_months = _text("Tenure (months)", 4)
    disbursed_on = _text("Disbursed on (YYYY-MM-DD)", 10)
    first_due_on = _text("First EMI due on (YYYY-MM-DD)", 10)

    def loan_fields(self) -> dict[str, str]:
        return {name: field.data for name, field in self._fields.items() if name != "csrf_token"}


class ImportLoansForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired()])


class AssignCollectorForm(FlaskForm):
    collector_username = _text("Collector username", 64)
