"""How a reminder travels: the job log, SMTP e-mail, or a signed HTTP webhook to an SMS/WhatsApp gateway.

Standard library only (logging, smtplib, urllib). A transport either returns (delivered) or raises
DeliveryError, saying whether trying again later could help (`permanent=False`) or not.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Callable

log = logging.getLogger("kisht.jobs")

SIGNATURE_HEADER = "X-Kisht-Signature"
RETRYABLE_HTTP = (408, 425, 429)  # client errors that mean "later", not "never"


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.message, self.permanent = message, permanent


@dataclass(frozen=True)
class Outgoing:
    reminder_id: int
    channel: str
    recipient: str | None
    language: str
    subject: str
    body: str
    loan_number: str
    rule: str


def mask(recipient: str | None) -> str:
    """Enough of an address or number to tell them apart in a log line, not enough to contact anyone."""
    if not recipient:
        return "(none)"
    if "@" in recipient:
        local, _, domain = recipient.partition("@")
        return f"{local[:1]}***@{domain}"
    return "*" * max(0, len(recipient) - 4) + recipient[-4:]


# ---------------------------------------------------------------- log

def send_log(config, message: Outgoing) -> None:
    log.info("reminder %s %s [%s, %s] to %s: %s | %s", message.reminder_id, message.rule, message.channel,
             message.language, mask(message.recipient), message.subject, message.body.replace("\n", " / "))


# ---------------------------------------------------------------- SMTP

def build_email(config, message: Outgoing) -> EmailMessage:
    email = EmailMessage()
    email["From"] = config["SMTP_FROM"]
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = make_msgid(idstring=f"kisht-reminder-{message.reminder_id}")
    email.set_content(message.body)  # UTF-8 text, Devanagari included (set_content clears Content-* headers)
    email["Content-Language"] = message.language
    return email


def send_smtp(config, message: Outgoing) -> None:
    if not message.recipient:
        raise DeliveryError("the borrower has no e-mail address on record", permanent=True)
    try:
        email = build_email(config, message)
    except (ValueError, TypeError) as bad:  # a malformed address (e.g. a line break) never goes out
        raise DeliveryError(f"invalid e-mail message: {bad}", permanent=True) from None
    try:
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=config["SMTP_TIMEOUT_SECONDS"]) as smtp:
            if config["SMTP_STARTTLS"]:
                smtp.starttls(context=ssl.create_default_context())
            if config["SMTP_USER"]:
                smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
            smtp.send_message(email)
    except smtplib.SMTPRecipientsRefused as refused:
        code, reply = next(iter(refused.recipients.values()))
        raise DeliveryError(f"SMTP server refused the recipient: {code} {_text(reply)}",
                            permanent=500 <= code < 600) from None
    except smtplib.SMTPAuthenticationError as denied:
        raise DeliveryError(f"SMTP login refused: {denied.smtp_code} {_text(denied.smtp_error)}",
                            permanent=False) from None
    except smtplib.SMTPResponseException as answer:
        raise DeliveryError(f"SMTP error {answer.smtp_code} {_text(answer.smtp_error)}",
                            permanent=500 <= answer.smtp_code < 600) from None
    except (smtplib.SMTPException, OSError) as failure:
        raise DeliveryError(f"SMTP server unreachable or failing: {type(failure).__name__}: {failure}",
                            permanent=False) from None


def _text(reply) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply))[:300]


# ---------------------------------------------------------------- webhook

def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw request body: the gateway recomputes it to know the call is ours."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_body(message: Outgoing) -> bytes:
    payload = {"reminder_id": message.reminder_id, "channel": message.channel, "to": message.recipient,
               "language": message.language, "text": message.body, "subject": message.subject,
               "loan_number": message.loan_number, "rule": message.rule}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A signed body goes to the configured URL only; a redirect is reported, not followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def send_webhook(config, message: Outgoing) -> None:
    if not message.recipient:
        raise DeliveryError("the borrower has no mobile number on record", permanent=True)
    body = webhook_body(message)
    request = urllib.request.Request(config["REMINDER_WEBHOOK_URL"], data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: signature(config["REMINDER_WEBHOOK_SECRET"], body),
        "Idempotency-Key": f"kisht-reminder-{message.reminder_id}",  # a gateway can drop a repeat after a crash
        "User-Agent": "kisht-reminders/1",
    })
    try:
        with _opener.open(request, timeout=config["REMINDER_WEBHOOK_TIMEOUT_SECONDS"]) as response:
            response.read(1024)
    except urllib.error.HTTPError as answer:
        detail = answer.read(300).decode("utf-8", "replace").strip()
        answer.close()
        permanent = 300 <= answer.code < 500 and answer.code not in RETRYABLE_HTTP
        raise DeliveryError(f"gateway answered HTTP {answer.code}" + (f": {detail}" if detail else ""),
                            permanent=permanent) from None
    except (urllib.error.URLError, OSError) as failure:
        reason = getattr(failure, "reason", failure)
        raise DeliveryError(f"gateway unreachable: {type(reason).__name__}: {reason}", permanent=False) from None


TRANSPORTS: dict[str, Callable] = {"log": send_log, "smtp": send_smtp, "webhook": send_webhook}
