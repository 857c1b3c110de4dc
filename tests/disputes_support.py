"""Shared by the dispute tests: real (tiny) evidence files, a private evidence directory, handy loans."""
from __future__ import annotations

import io
import secrets
import struct
import zlib
from datetime import timedelta

import pytest

from webapp import clock
from webapp.services import payments
from webapp.services.evidence import Upload


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG image (RGB, all pixels teal), built by hand."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x0b\x5d\x6b" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg() -> bytes:
    """The start and end markers of a JPEG with a JFIF header: enough to be recognised as one."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"


def pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200  # a Windows executable's start
TEXT = b"This is plain text pretending to be a bank statement.\n"


def upload(name: str, data: bytes) -> Upload:
    return Upload(name, io.BytesIO(data))


@pytest.fixture(autouse=True)
def evidence_dir(app, service_app, tmp_path, monkeypatch):
    """Each test stores evidence in its own directory, never under instance/."""
    target = tmp_path / "evidence"
    for application in (app, service_app):
        monkeypatch.setitem(application.config, "EVIDENCE_DIR", str(target))
    return target


@pytest.fixture()
def standard_loan(make_loan):
    """A current (STANDARD) loan of collector col in PUNE01: outside legal's NPA scope."""
    today = clock.today_ist()
    return make_loan(loan_number="KLSTD", borrower_name="Asha Pawar", borrower_phone="9000000011",
                     disbursed_on=(today - timedelta(days=10)).isoformat(),
                     first_due_on=(today + timedelta(days=20)).isoformat())


def pay(db, user, loan_number: str, amount: str = "1000", reference: str | None = None):
    reference = reference or str(10**11 + secrets.randbelow(9 * 10**11))  # a fresh 12-digit UPI reference
    booked = payments.record_payment(db, user, loan_number, {"amount": amount, "mode": "UPI", "reference": reference})
    return booked.payment
