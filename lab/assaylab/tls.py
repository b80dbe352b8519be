"""A self-signed certificate for 127.0.0.1, made with openssl, for serving TLS in tests."""

from __future__ import annotations

import pathlib
import shutil
import subprocess


def self_signed(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path] | None:
    """(tls.crt, tls.key) in `directory`, valid for IP 127.0.0.1 for a day; None when openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "tls.crt", directory / "tls.key"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=assay-webhook"]
    subprocess.run(
        [openssl, *request, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
