#!/usr/bin/env python3
"""PAdES B-T and B-LT with rssp's own trust services, judged by pyHanko.

  sign      pyHanko signs a PDF through /csc/v1 (SCAL2: authorize with a TOTP code, then signHash),
            with its HTTP time-stamper pointed at rssp's POST /tsa (PAdES B-T), and embeds the
            validation data it fetches from rssp (OCSP responses from /ocsp, CRLs) in the document's
            DSS (PAdES B-LT). It then validates the signature online: intact, valid, trusted, with a
            trusted signature time-stamp, and checks that the DSS holds OCSP responses.
  validate  validates the signed file again with no network at all (run it after rssp has stopped):
            the signature, its time-stamp and the revocation status of every certificate must come
            from the file alone.

Exits non-zero with a one-line reason on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.signers.csc_signer import (
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.policy_decl import (
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy, FreshnessReqType
from pyhanko_certvalidator import ValidationContext

from sign_and_validate import (
    InteropError,
    TotpAuthorizationManager,
    TotpSource,
    load_root,
    login,
    make_test_pdf,
)


def summary(status) -> str:
    ts = status.timestamp_validity
    return (f"intact={status.intact} valid={status.valid} trusted={status.trusted} "
            f"timestamp={'none' if ts is None else f'intact={ts.intact} valid={ts.valid} trusted={ts.trusted}'}")


def check(status, what: str) -> None:
    ts = status.timestamp_validity
    if not (status.intact and status.valid and status.trusted and status.bottom_line):
        raise InteropError(f"{what}: {summary(status)}\n{status.pretty_print_details()}")
    if ts is None or not (ts.intact and ts.valid and ts.trusted):
        raise InteropError(f"{what}: no trusted signature time-stamp: {summary(status)}\n"
                           f"{status.pretty_print_details()}")


def dss_counts(data: bytes) -> tuple[int, int, int]:
    """(certificates, OCSP responses, CRLs) in the document security store."""
    reader = PdfFileReader(io.BytesIO(data))
    dss = reader.root.get("/DSS")
    if dss is None:
        return (0, 0, 0)
    dss = dss.get_object()
    count = lambda key: len(dss[key]) if key in dss else 0  # noqa: E731
    return (count("/Certs"), count("/OCSPs"), count("/CRLs"))


async def sign(args) -> None:
    base = args.url.rstrip("/")
    root = load_root(args.root_pem)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        token = await login(http, base, args.username, args.password)
        session = CSCServiceSessionInfo(service_url=base, credential_id=args.credential_id, oauth_token=token)
        credential = await fetch_certs_in_csc_credential(http, session)
        auth = TotpAuthorizationManager(session, credential, http, TotpSource(args.totp_secret))
        signer = CSCSigner(http, auth_manager=auth, batch_size=1)
        # Online: pyHanko follows the certificates' AIA and CRL URLs, which name rssp.
        online = ValidationContext(trust_roots=[root], allow_fetching=True, revocation_mode="require")
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1",
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            reason="rssp long-term validation test",
            embed_validation_info=True,
            validation_context=online,
        )
        timestamper = timestamps.HTTPTimeStamper(f"{base}/tsa")
        pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=timestamper)
        writer = IncrementalPdfFileWriter(io.BytesIO(make_test_pdf(1)))
        data = (await pdf_signer.async_sign_pdf(writer)).getvalue()
    with open(args.out, "wb") as f:
        f.write(data)
    certs, ocsps, crls = dss_counts(data)
    if ocsps == 0:
        raise InteropError(f"the DSS holds no OCSP response (certs={certs}, crls={crls})")
    sig = PdfFileReader(io.BytesIO(data)).embedded_signatures[0]
    status = await async_validate_pdf_signature(
        sig,
        signer_validation_context=ValidationContext(trust_roots=[root], allow_fetching=True, revocation_mode="require"),
    )
    check(status, "online validation")
    print(f"OK   B-T/B-LT signed: {summary(status)}; DSS certs={certs} ocsps={ocsps} crls={crls}")


async def validate(args) -> None:
    root = load_root(args.root_pem)
    with open(args.file, "rb") as f:
        data = f.read()
    reader = PdfFileReader(io.BytesIO(data))
    sig = reader.embedded_signatures[0]
    # No fetching: the revocation data must come from the document's DSS; missing data is a failure.
    offline = DocumentSecurityStore.read_dss(reader).as_validation_context(
        {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "require"}
    )
    status = await async_validate_pdf_signature(sig, signer_validation_context=offline, ts_validation_context=offline)
    check(status, "offline validation (rssp stopped)")
    print(f"OK   B-LT validates offline from its DSS: {summary(status)}")

    # The ETSI EN 319 102-1 validation `pyhanko sign adesverify` runs, with adesverify's revocation
    # policy, but told to use what the document holds (LOCAL_ONLY): with online fetching allowed,
    # pyHanko 0.38 asks the OCSP responder named in a certificate and, when that fails, does not fall
    # back to the responses in the DSS (RevinfoManager.async_retrieve_ocsps), so adesverify on its own
    # cannot judge a B-LT file offline whose certificates name an OCSP responder.
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
    # Judged as adesverify judges it: its bottom line, here with the signer and the time-stamp trusted.
    # The subindication is shown: without a document time-stamp (B-LTA) the past validation has no
    # proof of existence for the revocation data (NO_POE), which the bottom line does not need.
    check(result.api_status, "AdES validation (local only)")
    print(f"OK   AdES (EN 319 102-1) validation from the document alone: {result.api_status.summary()} "
          f"({result.ades_subindic})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sign")
    s.add_argument("--url", required=True)
    s.add_argument("--username", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--credential-id", required=True)
    s.add_argument("--totp-secret", required=True)
    s.add_argument("--root-pem", required=True)
    s.add_argument("--out", required=True)
    v = sub.add_parser("validate")
    v.add_argument("--root-pem", required=True)
    v.add_argument("--file", required=True)
    args = p.parse_args()
    try:
        asyncio.run(sign(args) if args.command == "sign" else validate(args))
    except InteropError as e:
        print(f"FAIL {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
