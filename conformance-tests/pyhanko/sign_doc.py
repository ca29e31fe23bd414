#!/usr/bin/env python3
"""CSC v2 signatures/signDoc judged by pyHanko.

  1. POST /csc/v2/auth/login (HTTP Basic) and /csc/v2/credentials/info (the certificate chain).
  2. PAdES with an external CMS: pyHanko prepares a PDF for signing (interrupted signing: the signature
     placeholder and the /ByteRange digest), the person authorises that digest with a TOTP code
     (SCAL2), signDoc returns the CMS of a PAdES-B-T signature for it (signature_format P,
     documentDigests), pyHanko embeds it and validates the PDF: intact, valid, trusted, covering the
     whole file, with a trusted signature time-stamp from rssp's TSA.
  3. PAdES of a whole PDF: rssp signs it inside (Ades-B-T, certifying it), then signs the result again
     (an approval); pyHanko validates both signatures: intact, valid, trusted, time-stamped, the first
     with only the second signature added after it (allowed by its certification), the second covering
     the whole file.
  4. PAdES-B-LTA of a whole PDF: rssp adds the validation data (DSS) and a document time-stamp; pyHanko
     validates it with no network at all, from the document alone: the signature, its time-stamp and the
     revocation status of every certificate, and the AdES (EN 319 102-1) long-term validation.
  5. CAdES: a text file is sent whole (documents) and signed detached at B-T; pyHanko validates the
     .p7s against the file: intact, valid, trusted, with a trusted time-stamp. The same .p7s does not
     validate against another file.
  6. CAdES-B-LT: the same at B-LT; pyHanko validates it with no network, the revocation of every
     certificate required, from the CRLs and OCSP responses inside the .p7s alone.

Exits non-zero with a one-line reason on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import sys

import aiohttp
from asn1crypto import algos, cms, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.validation import async_validate_detached_cms, async_validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.policy_decl import (
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy, FreshnessReqType
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.registry import SimpleCertificateStore

from sign_and_validate import InteropError, TotpSource, load_root, make_test_pdf, read_json

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SignDocClient:
    """The v2 calls this check makes, with a bearer token."""

    def __init__(self, http: aiohttp.ClientSession, base: str, credential_id: str, totp: TotpSource) -> None:
        self.http, self.base, self.credential_id, self.totp = http, base, credential_id, totp
        self.token = ""

    async def post(self, path: str, body: dict, what: str) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.post(f"{self.base}/csc/v2/{path}", json=body, headers=headers) as resp:
            return await read_json(resp, what)

    async def login(self, user: str, password: str) -> None:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        async with self.http.post(
            f"{self.base}/csc/v2/auth/login", json={}, headers={"Authorization": f"Basic {basic}"}
        ) as resp:
            self.token = (await read_json(resp, "v2 auth/login"))["access_token"]

    async def chain(self) -> list[x509.Certificate]:
        info = await self.post(
            "credentials/info", {"credentialID": self.credential_id, "certificates": "chain"}, "credentials/info"
        )
        return [x509.Certificate.load(base64.b64decode(c)) for c in info["cert"]["certificates"]]

    async def authorize(self, digests: list[bytes]) -> str:
        body = {
            "credentialID": self.credential_id,
            "numSignatures": len(digests),
            "hashes": [b64(d) for d in digests],
            "hashAlgorithmOID": SHA256,
            "authData": [{"id": "OTP", "value": await self.totp.next_code()}],
        }
        return (await self.post("credentials/authorize", body, "v2 credentials/authorize"))["SAD"]

    async def sign_doc(self, body: dict) -> dict:
        return await self.post("signatures/signDoc", {"credentialID": self.credential_id, **body}, "signDoc")


def check(status, what: str) -> None:
    ts = status.timestamp_validity
    if not (status.intact and status.valid and status.trusted and status.bottom_line):
        raise InteropError(f"{what}: intact={status.intact} valid={status.valid} trusted={status.trusted}\n"
                           + status.pretty_print_details())
    if ts is None or not (ts.intact and ts.valid and ts.trusted):
        raise InteropError(f"{what}: the signature time-stamp is missing or not trusted: {ts}")


async def pades_with_external_cms(client: SignDocClient, chain: list[x509.Certificate],
                                  vc: ValidationContext) -> None:
    signer_cert, issuers = chain[0], chain[1:]
    mechanism = "sha256_ecdsa" if signer_cert.public_key.algorithm == "ec" else "sha256_rsa"
    placeholder = signers.ExternalSigner(
        signing_cert=signer_cert,
        cert_registry=SimpleCertificateStore.from_certs(issuers),
        signature_value=512,
        signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mechanism}),
    )
    meta = signers.PdfSignatureMetadata(
        field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    pdf_signer = signers.PdfSigner(meta, signer=placeholder)
    writer = IncrementalPdfFileWriter(io.BytesIO(make_test_pdf(7)))
    # Room for rssp's CMS with its time-stamp token (hex: twice the DER).
    prepared, _, output = await pdf_signer.async_digest_doc_for_signing(writer, bytes_reserved=32768)
    digest = prepared.document_digest
    sad = await client.authorize([digest])
    answer = await client.sign_doc({
        "SAD": sad,
        "documentDigests": [{
            "hashes": [b64(digest)], "hashAlgorithmOID": SHA256, "signature_format": "P",
            "conformance_level": "Ades-B-T", "signAlgo": signer_algo(signer_cert),
        }],
    })
    objects = answer.get("SignatureObject") or []
    if len(objects) != 1 or "DocumentWithSignature" in answer:
        raise InteropError(f"signDoc P: expected one SignatureObject, got {list(answer)}")
    signature_cms = cms.ContentInfo.load(base64.b64decode(objects[0]))
    await PdfTBSDocument.async_finish_signing(output, prepared, signature_cms=signature_cms)
    output.seek(0)
    data = output.read()
    sig = PdfFileReader(io.BytesIO(data)).embedded_signatures[0]
    if sig.sig_object["/SubFilter"] != "/ETSI.CAdES.detached":
        raise InteropError(f"SubFilter {sig.sig_object['/SubFilter']}")
    status = await async_validate_pdf_signature(sig, signer_validation_context=vc, ts_validation_context=vc)
    check(status, "PAdES-B-T from signDoc")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise InteropError(f"coverage is {status.coverage}")
    print(f"OK   PAdES-B-T with rssp's CMS: intact, valid, trusted, time-stamped at {status.timestamp_validity.timestamp}")


async def pades_whole_documents(client: SignDocClient, chain: list[x509.Certificate],
                                vc: ValidationContext) -> None:
    data = make_test_pdf(9)
    for round in ("certification", "approval"):
        sad = await client.authorize([hashlib.sha256(data).digest()])
        answer = await client.sign_doc({
            "SAD": sad,
            "documents": [{"document": b64(data), "signature_format": "P", "conformance_level": "Ades-B-T",
                           "signAlgo": signer_algo(chain[0])}],
        })
        signed = answer.get("DocumentWithSignature") or []
        if len(signed) != 1:
            raise InteropError(f"signDoc P documents ({round}): expected one DocumentWithSignature, got {list(answer)}")
        signed_data = base64.b64decode(signed[0])
        if not signed_data.startswith(data):
            raise InteropError(f"signDoc P documents ({round}): the original bytes were changed")
        data = signed_data
    sigs = PdfFileReader(io.BytesIO(data)).embedded_signatures
    if len(sigs) != 2:
        raise InteropError(f"expected 2 signatures, found {len(sigs)}")
    for sig, what in zip(sigs, ("the certification", "the approval")):
        status = await async_validate_pdf_signature(sig, signer_validation_context=vc, ts_validation_context=vc)
        check(status, f"PAdES-B-T of a whole PDF, {what}")
        if not status.docmdp_ok:
            raise InteropError(f"{what}: changes after it break the certification ({status.modification_level})")
    first, second = sigs
    if first.docmdp_level is None:
        raise InteropError("the first signature does not certify the document")
    last = await async_validate_pdf_signature(second, signer_validation_context=vc, ts_validation_context=vc)
    if last.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise InteropError(f"the second signature's coverage is {last.coverage}")
    print("OK   PAdES-B-T of a whole PDF, certified then approved: both intact, valid, trusted, time-stamped")


async def pades_b_lta(client: SignDocClient, chain: list[x509.Certificate], root: x509.Certificate) -> None:
    data = make_test_pdf(10)
    sad = await client.authorize([hashlib.sha256(data).digest()])
    answer = await client.sign_doc({
        "SAD": sad,
        "documents": [{"document": b64(data), "signature_format": "P", "conformance_level": "Ades-B-LTA",
                       "signAlgo": signer_algo(chain[0])}],
    })
    signed = base64.b64decode((answer.get("DocumentWithSignature") or [""])[0])
    if not signed.startswith(data):
        raise InteropError(f"signDoc P B-LTA: no signed document, or the original bytes changed: {list(answer)}")
    reader = PdfFileReader(io.BytesIO(signed))
    sig = reader.embedded_signatures[0]
    # No fetching: the revocation data must come from the document's DSS; missing data is a failure.
    offline = DocumentSecurityStore.read_dss(reader).as_validation_context(
        {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "require"}
    )
    status = await async_validate_pdf_signature(sig, signer_validation_context=offline, ts_validation_context=offline)
    check(status, "PAdES-B-LTA of a whole PDF, offline from its DSS")
    timestamps = [s for s in reader.embedded_signatures if s.sig_object.get("/Type") == "/DocTimeStamp"]
    if len(timestamps) != 1:
        raise InteropError(f"expected one document time-stamp, found {len(timestamps)}")
    revocation = CertRevTrustPolicy(
        REQUIRE_REVINFO, freshness=None, freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION
    )
    spec = PdfSignatureValidationSpec(
        signature_validation_spec=SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[root]), revinfo_policy=revocation
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
        )
    )
    result = await ades_lta_validation(sig, spec, timing_info=ValidationTimingInfo.now())
    if not result.api_status.bottom_line:
        raise InteropError(f"AdES long-term validation: {result.api_status.summary()} ({result.ades_subindic})")
    print(f"OK   PAdES-B-LTA of a whole PDF, offline from its DSS: {result.api_status.summary()} ({result.ades_subindic})")


def signer_algo(cert: x509.Certificate) -> str:
    return ECDSA_SHA256 if cert.public_key.algorithm == "ec" else "1.2.840.113549.1.1.11"


async def detached_cades(client: SignDocClient, chain: list[x509.Certificate], document: bytes, level: str):
    """signDoc of `document` as a detached CAdES at `level`, with a code for its digest: the SignedData."""
    sad = await client.authorize([hashlib.sha256(document).digest()])
    answer = await client.sign_doc({
        "SAD": sad,
        "documents": [{
            "document": b64(document), "signature_format": "C", "conformance_level": level,
            "signed_envelope_property": "Detached", "signAlgo": signer_algo(chain[0]),
        }],
    })
    objects = answer.get("SignatureObject") or []
    if len(objects) != 1:
        raise InteropError(f"signDoc C Detached {level}: expected one SignatureObject, got {list(answer)}")
    return cms.ContentInfo.load(base64.b64decode(objects[0]))["content"]


async def cades_detached(client: SignDocClient, chain: list[x509.Certificate], vc: ValidationContext) -> None:
    document = b"A plain text file signed as a detached CAdES-B-T by rssp.\n"
    signed_data = await detached_cades(client, chain, document, "Ades-B-T")
    status = await async_validate_detached_cms(document, signed_data, signer_validation_context=vc,
                                               ts_validation_context=vc)
    check(status, "detached CAdES-B-T from signDoc")
    other = await async_validate_detached_cms(document + b"!", signed_data, signer_validation_context=vc,
                                              ts_validation_context=vc)
    if other.intact:
        raise InteropError("the detached CAdES validates against another file")
    print("OK   CAdES-B-T detached (.p7s): intact, valid, trusted, time-stamped; not valid for another file")


async def cades_b_lt_offline(client: SignDocClient, chain: list[x509.Certificate], root: x509.Certificate) -> None:
    document = b"A plain text file signed as a detached CAdES-B-LT by rssp.\n"
    signed_data = await detached_cades(client, chain, document, "Ades-B-LT")
    # What validates it later comes from the .p7s alone: its certificates, CRLs and OCSP responses.
    crls, ocsps = [], []
    for choice in signed_data["crls"]:
        if choice.name == "crl":
            crls.append(choice.chosen)
        elif choice.chosen["other_rev_info_format"].native == "ocsp_response":
            ocsps.append(choice.chosen["other_rev_info"])
    if len(crls) != 2 or len(ocsps) < 2:
        raise InteropError(f"CAdES-B-LT: expected 2 CRLs and 2 or more OCSP responses, found {len(crls)} and {len(ocsps)}")
    certs = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"]
    offline = ValidationContext(trust_roots=[root], other_certs=certs, crls=crls, ocsps=ocsps,
                                allow_fetching=False, revocation_mode="require")
    status = await async_validate_detached_cms(document, signed_data, signer_validation_context=offline,
                                               ts_validation_context=offline)
    check(status, "detached CAdES-B-LT from signDoc, offline from its own revocation values")
    print(f"OK   CAdES-B-LT detached (.p7s): intact, valid, trusted, time-stamped, revocation checked offline "
          f"from its {len(crls)} CRLs and {len(ocsps)} OCSP responses")


async def run(args) -> None:
    root = load_root(args.root_pem)
    vc = ValidationContext(trust_roots=[root], allow_fetching=False, revocation_mode="soft-fail")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        client = SignDocClient(http, args.url.rstrip("/"), args.credential_id, TotpSource(args.totp_secret))
        await client.login(args.username, args.password)
        chain = await client.chain()
        await pades_with_external_cms(client, chain, vc)
        await pades_whole_documents(client, chain, vc)
        await pades_b_lta(client, chain, root)
        await cades_detached(client, chain, vc)
        await cades_b_lt_offline(client, chain, root)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--credential-id", required=True)
    p.add_argument("--totp-secret", required=True)
    p.add_argument("--root-pem", required=True)
    args = p.parse_args()
    try:
        try:
            asyncio.run(run(args))
        except (aiohttp.ClientError, OSError, KeyError) as e:
            raise InteropError(f"HTTP/IO error: {e!r}")
    except InteropError as e:
        print(f"pyHanko signDoc FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
