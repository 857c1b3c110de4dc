"""Evidence files of disputes on disk: type from the content, random names, SHA-256 on the way in and out.

Files live under EVIDENCE_DIR (default instance/evidence), outside static/, so the only way to read one
is the dispute's evidence route, which checks the loan's scope. A stored file is never overwritten,
renamed or deleted by the application.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app

PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"
TYPE_NAMES = {PDF: "PDF", JPEG: "JPEG", PNG: "PNG"}
STORED_NAME_RE = re.compile(r"^[0-9a-f]{32}$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_NAME = 255


@dataclass(frozen=True)
class Upload:
    """A file as it arrived: the name the sender gave it (display only) and a stream of its bytes."""

    filename: str
    stream: BinaryIO


@dataclass(frozen=True)
class Checked:
    original_name: str
    content_type: str
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)


def sniff(data: bytes) -> str | None:
    """The content type recognised from the bytes themselves, or None. Names and browser types are ignored."""
    if data.startswith(b"%PDF-") and b"%%EOF" in data[-2048:]:
        return PDF
    if data.startswith(b"\xff\xd8\xff") and len(data) > 4:
        return JPEG
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return PNG
    return None


def safe_name(raw: str | None) -> str:
    """The uploaded name, kept for display: no path, no control characters, at most 255 characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "evidence"
    return name[-MAX_NAME:]


def check(upload: Upload, max_bytes: int) -> tuple[Checked | None, str | None]:
    """Read one upload (never more than max_bytes + 1 bytes) and say what is wrong with it, if anything."""
    name = safe_name(upload.filename)
    data = upload.stream.read(max_bytes + 1)
    if not data:
        return None, f"{name}: is empty"
    if len(data) > max_bytes:
        return None, f"{name}: is larger than {human_size(max_bytes)}"
    content_type = sniff(data)
    if content_type is None:
        return None, f"{name}: is not a PDF, JPEG or PNG file (checked from its content, not its name)"
    return Checked(name, content_type, data, hashlib.sha256(data).hexdigest()), None


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def root() -> Path:
    return Path(current_app.config["EVIDENCE_DIR"])


def path_of(stored_name: str) -> Path:
    if not STORED_NAME_RE.match(stored_name or ""):
        raise ValueError("not a stored evidence name")
    return root() / stored_name[:2] / stored_name


def write(checked: Checked) -> str:
    """Store the bytes under a new random name (created exclusively, never overwriting); return the name."""
    while True:
        stored_name = secrets.token_hex(16)
        target = path_of(stored_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:  # pragma: no cover - 128 random bits
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(checked.data)
            out.flush()
            os.fsync(out.fileno())
        return stored_name


def discard(stored_names: list[str]) -> None:
    """Remove files written by a booking that failed before its transaction could record them."""
    for stored_name in stored_names:
        try:
            path_of(stored_name).unlink(missing_ok=True)
        except (OSError, ValueError):  # pragma: no cover - best effort
            pass


def read_verified(stored_name: str, expected_sha256: str) -> bytes | None:
    """The stored bytes if they still match their recorded checksum, else None (missing or altered)."""
    try:
        data = path_of(stored_name).read_bytes()
    except (OSError, ValueError):
        return None
    return data if hashlib.sha256(data).hexdigest() == expected_sha256 else None
