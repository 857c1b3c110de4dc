"""Forms shared by several screens."""
from flask_wtf import FlaskForm


class CsrfOnlyForm(FlaskForm):
    """For HTMX/plain posts whose fields the service validates: this checks the CSRF token only."""
