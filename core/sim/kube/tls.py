"""A throwaway serving certificate, so the simulated API server can speak HTTPS like a real one.

kubectl (client-go) sends bearer tokens only over TLS, and an in-cluster kubernetes client always
dials https://KUBERNETES_SERVICE_HOST; both need a server certificate they can verify. It is made by
the `openssl` command (the Python dependencies have no X.509 writer): an EC key and a self-signed
certificate valid for 127.0.0.1 and localhost, for one day, in a private temporary folder.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServingCert:
    folder: Path
    #: the certificate, which is its own CA: what a kubeconfig's certificate-authority-data carries
    ca_pem: bytes = b""

    @property
    def cert_file(self) -> Path:
        return self.folder / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.folder / "tls.key"

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def make_serving_cert() -> ServingCert:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "serving the simulated API over TLS needs the openssl command, which is not installed"
        )
    folder = Path(tempfile.mkdtemp(prefix="deploydeck-sim-tls-"))
    cert = ServingCert(folder)
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=deploydeck-sim",
            "-addext",
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
            "-keyout",
            str(cert.key_file),
            "-out",
            str(cert.cert_file),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    cert.key_file.chmod(0o600)
    cert.ca_pem = cert.cert_file.read_bytes()  # kept: the files go when the server stops
    return cert
