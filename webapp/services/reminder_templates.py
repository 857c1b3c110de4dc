"""The words of a payment reminder, in English and Hindi.

Every message names the loan number, the amount due, the due date and the lender's official payment
channels (configuration), and is written to inform and to help, never to pressure: no threat, no mention of
consequences, an invitation to talk to the branch when paying is hard, and thanks if it is already paid.
A test reads every template for words that must never appear (tests/integration/test_reminders.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from webapp import money

DEFAULT_LANGUAGE = "en"

MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "hi": ("जनवरी", "फ़रवरी", "मार्च", "अप्रैल", "मई", "जून", "जुलाई", "अगस्त", "सितंबर", "अक्टूबर", "नवंबर", "दिसंबर"),
}

# kind → (subject, opening paragraph). The rest of the message is common to every kind.
TEXTS = {
    "en": {
        "subject": "{lender}: payment reminder for loan {loan_number}",
        "greeting": "Dear {name},",
        "BEFORE": "This is a friendly reminder from {lender} that the instalment on your loan {loan_number} "
                  "falls due on {due_date}. The amount due is {amount}.",
        "DUE": "This is a friendly reminder from {lender} that the instalment on your loan {loan_number} "
               "is due today, {due_date}. The amount due is {amount}.",
        "OVERDUE": "Our records show that the instalment on your loan {loan_number} that was due on {due_date} "
                   "has not been received yet. The amount now due is {amount}. If you are finding it difficult "
                   "to pay, please talk to us at your branch; we will be glad to help.",
        "channels": "You can pay through our official channels: {channels}. Please pay only through these "
                    "channels and keep your receipt.",
        "closing": "If you have already paid, thank you, and please ignore this message. For any question, "
                   "please contact your branch.",
        "signature": "Regards,\n{lender}",
    },
    "hi": {
        "subject": "{lender}: ऋण {loan_number} के भुगतान का अनुस्मारक",
        "greeting": "प्रिय {name},",
        "BEFORE": "{lender} की ओर से यह एक अनुस्मारक है कि आपके ऋण {loan_number} की किस्त {due_date} को देय है। "
                  "देय राशि {amount} है।",
        "DUE": "{lender} की ओर से यह एक अनुस्मारक है कि आपके ऋण {loan_number} की किस्त आज, {due_date} को देय है। "
               "देय राशि {amount} है।",
        "OVERDUE": "हमारे रिकॉर्ड के अनुसार आपके ऋण {loan_number} की {due_date} को देय किस्त अभी तक प्राप्त नहीं हुई "
                   "है। अब देय राशि {amount} है। यदि आपको भुगतान करने में कोई कठिनाई हो, तो कृपया अपनी शाखा में "
                   "हमसे बात करें; हम सहायता के लिए तैयार हैं।",
        "channels": "आप हमारे आधिकारिक माध्यमों से भुगतान कर सकते हैं: {channels}। कृपया केवल इन्हीं माध्यमों से "
                    "भुगतान करें और अपनी रसीद संभाल कर रखें।",
        "closing": "यदि आप भुगतान कर चुके हैं, तो धन्यवाद; कृपया इस संदेश को अनदेखा करें। किसी भी प्रश्न के लिए "
                   "कृपया अपनी शाखा से संपर्क करें।",
        "signature": "सादर,\n{lender}",
    },
}
LANGUAGES = tuple(TEXTS)  # the languages a reminder can be written in; any other falls back to English


@dataclass(frozen=True)
class Rendered:
    language: str
    subject: str
    body: str


def language_for(preferred: str | None) -> str:
    return preferred if preferred in TEXTS else DEFAULT_LANGUAGE


def kind_of(rule: str) -> str:
    """BEFORE_3 → BEFORE, DUE → DUE, OVERDUE_7 → OVERDUE."""
    return rule.split("_", 1)[0]


def format_date(day: date, language: str) -> str:
    return f"{day.day} {MONTHS[language][day.month - 1]} {day.year}"


def render(*, rule: str, language: str, name: str, loan_number: str, due_date: date, amount_paise: int,
           lender: str, channels: str) -> Rendered:
    language = language_for(language)
    texts = TEXTS[language]
    values = {"name": name, "loan_number": loan_number, "due_date": format_date(due_date, language),
              "amount": money.format_inr(amount_paise), "lender": lender, "channels": channels}
    paragraphs = [texts["greeting"], texts[kind_of(rule)], texts["channels"], texts["closing"], texts["signature"]]
    body = "\n\n".join(paragraph.format(**values) for paragraph in paragraphs)
    return Rendered(language, texts["subject"].format(**values), body)
