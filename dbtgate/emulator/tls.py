"""A throwaway self-signed certificate for 127.0.0.1 / localhost, so https-only clients can use the emulator."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class TlsUnavailable(RuntimeError):
    pass


def make_self_signed_certificate(directory: Path | None = None) -> tuple[Path, Path]:
    """Create (certificate, key) PEM files valid for two days; the certificate doubles as the CA bundle."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsUnavailable("HTTPS needs the `openssl` command to make a self-signed certificate; install it "
                             "(apt-get install openssl) or run the emulator over plain http.")
    folder = directory or Path(tempfile.mkdtemp(prefix="dbtgate-emulator-tls-"))
    cert, key = folder / "emulator-cert.pem", folder / "emulator-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "basicConstraints=critical,CA:TRUE",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key
