#!/usr/bin/env python3
"""The alternative to signDoc a user has: pyHanko signing a PDF locally with a software ECDSA P-256 key
(PAdES B-B, /ETSI.CAdES.detached), ROUNDS times. Prints the median seconds per signature.

    pyhanko_local_sign.py FILE.pdf ROUNDS

Run by `cargo bench --bench documents` with the project's .venv (conformance-tests/pyhanko)."""

import datetime
import io
import statistics
import sys
import time

from asn1crypto import keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore


def software_signer() -> signers.SimpleSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "Local signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return signers.SimpleSigner(
        signing_cert=x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=SimpleCertificateStore())


def main() -> int:
    path, rounds = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        data = f.read()
    signer = software_signer()
    meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm="sha256")
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)), meta, signer=signer)
        out.getvalue()
        times.append(time.perf_counter() - began)
    print(statistics.median(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
