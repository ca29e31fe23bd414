#!/usr/bin/env python3
"""pyHanko interoperability check for the rssp CSC v1 remote signing server.

Flow (for --batch N):
  1. POST /csc/v1/auth/login            (HTTP Basic)          -> access_token
  2. POST /csc/v1/credentials/info      (pyHanko helper)      -> certs, key.algo, multisign, SCAL
  3. N PDFs are signed concurrently with one shared CSCSigner(batch_size=N):
     POST /csc/v1/credentials/authorize (once, N hashes, TOTP) -> SAD
     POST /csc/v1/signatures/signHash   (once, N hashes)       -> N signatures
  4. Every signed PDF is validated offline with pyHanko against --root-pem only,
     its CMS and signed byte ranges are written to --out-dir and checked with
     `openssl cms -verify`.

The script exits non-zero on any failure and asserts the exact HTTP request
sequence above.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import pyotp
from asn1crypto import cms, pem, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCCredentialInfo,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

log = logging.getLogger("csc-interop")

TOTP_STEP = 30


class InteropError(Exception):
    """A conformance failure; reported as a one-line message, exit code 1."""


# --------------------------------------------------------------------------
# HTTP request log (covers pyHanko's own requests via aiohttp tracing)
# --------------------------------------------------------------------------


@dataclass
class HttpRecord:
    method: str
    path: str
    body_fields: list[str] = field(default_factory=list)
    n_hashes: int | None = None
    status: int | None = None


class HttpLog:
    def __init__(self) -> None:
        self.records: list[HttpRecord] = []

    def trace_config(self) -> aiohttp.TraceConfig:
        tc = aiohttp.TraceConfig()

        async def on_start(session, ctx, params):
            ctx.record = HttpRecord(params.method, params.url.path)
            ctx.body = b""
            self.records.append(ctx.record)

        async def on_chunk(session, ctx, params):
            ctx.body += params.chunk

        async def on_end(session, ctx, params):
            rec: HttpRecord = ctx.record
            rec.status = params.response.status
            try:
                body = json.loads(ctx.body) if ctx.body else {}
            except ValueError:
                body = {}
            if isinstance(body, dict):
                rec.body_fields = sorted(body.keys())
                if isinstance(body.get("hash"), list):
                    rec.n_hashes = len(body["hash"])
            extra = f" hashes={rec.n_hashes}" if rec.n_hashes is not None else ""
            log.info(
                "HTTP %s %s body=%s%s -> %s",
                rec.method, rec.path, rec.body_fields, extra, rec.status,
            )

        async def on_exc(session, ctx, params):
            exc = params.exception
            status = getattr(exc, "status", None)
            ctx.record.status = status
            # don't log repr(exc): it includes the request headers (token)
            log.info("HTTP %s %s -> %s status=%s %s", ctx.record.method,
                     ctx.record.path, type(exc).__name__, status,
                     getattr(exc, "message", ""))

        tc.on_request_start.append(on_start)
        tc.on_request_chunk_sent.append(on_chunk)
        tc.on_request_end.append(on_end)
        tc.on_request_exception.append(on_exc)
        return tc


# --------------------------------------------------------------------------
# CSC API helpers
# --------------------------------------------------------------------------


async def read_json(resp: aiohttp.ClientResponse, what: str) -> dict:
    text = await resp.text()
    if resp.status // 100 != 2:
        raise InteropError(f"{what}: HTTP {resp.status}: {text[:500]}")
    try:
        data = json.loads(text)
    except ValueError:
        raise InteropError(f"{what}: response is not JSON: {text[:200]!r}")
    ctype = resp.headers.get("Content-Type", "")
    if "application/json" not in ctype:
        # pyHanko's own calls (credentials/info, signHash) use
        # aiohttp's resp.json(), which rejects other content types.
        raise InteropError(f"{what}: Content-Type is {ctype!r}, "
                           "expected application/json")
    return data


async def login(session: aiohttp.ClientSession, base: str, user: str,
                password: str) -> str:
    async with session.post(
        f"{base}/csc/v1/auth/login", json={},
        headers={"Authorization": "Basic " + base64.b64encode(
            f"{user}:{password}".encode("utf-8")).decode("ascii")},
    ) as resp:
        data = await read_json(resp, "auth/login")
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise InteropError(f"auth/login: no access_token in {data!r}")
    return token


class TotpSource:
    """Hands out TOTP codes, never two from the same 30 s time step
    (the server accepts every code at most once)."""

    def __init__(self, secret_b32: str) -> None:
        try:
            self.totp = pyotp.TOTP(secret_b32)  # SHA1, 6 digits, 30 s
        except (ValueError, TypeError) as e:
            # pyotp >= 2.9 rejects secrets shorter than 112 bits
            raise InteropError(f"--totp-secret unusable by pyotp: {e}")
        self.last_step: int | None = None

    async def next_code(self) -> str:
        while True:
            step = int(time.time()) // TOTP_STEP
            if self.last_step is None or step > self.last_step:
                break
            wait = (step + 1) * TOTP_STEP - time.time() + 0.5
            log.info("waiting %.1f s for the next TOTP time step", wait)
            await asyncio.sleep(wait)
        self.last_step = step
        return self.totp.at(step * TOTP_STEP)


class TotpAuthorizationManager(CSCAuthorizationManager):
    """credentials/authorize with explicit hashes (SCAL 2) and a TOTP."""

    def __init__(self, session_info: CSCServiceSessionInfo,
                 credential_info: CSCCredentialInfo,
                 http: aiohttp.ClientSession, totp: TotpSource) -> None:
        super().__init__(session_info, credential_info)
        self.http = http
        self.totp = totp
        self.calls = 0
        self.otp_retries = 0
        self.last_error: str | None = None

    async def _authorize_once(self, hash_b64s: list[str], otp: str):
        body = self.format_csc_auth_request(
            num_signatures=len(hash_b64s), otp=otp, hash_b64s=list(hash_b64s),
        )
        url = self.csc_session_info.endpoint_url("credentials/authorize")
        async with self.http.post(url, json=body,
                                  headers=self.auth_headers) as resp:
            return resp.status, await resp.text(), resp.headers

    async def authorize_signature(self, hash_b64s: list[str]
                                  ) -> CSCAuthorizationInfo:
        self.calls += 1
        otp = await self.totp.next_code()
        status, text, headers = await self._authorize_once(hash_b64s, otp)
        if status // 100 != 2 and "otp" in text.lower():
            # Another client (e.g. a previous CI step with the same user)
            # may have consumed this time step already: retry exactly once
            # with the code of the next step.
            log.warning("authorize rejected the OTP (%s %s); retrying once "
                        "with the next time step", status, text[:200])
            self.otp_retries += 1
            otp = await self.totp.next_code()
            status, text, headers = await self._authorize_once(hash_b64s, otp)
        if status // 100 != 2:
            self.last_error = f"credentials/authorize: HTTP {status}: {text[:500]}"
            raise SigningError(self.last_error)
        try:
            data = json.loads(text)
        except ValueError:
            raise SigningError(f"credentials/authorize: not JSON: {text!r}")
        info = self.parse_csc_auth_response(data)
        log.info("authorized %d signature(s), SAD expires in %s s",
                 len(hash_b64s), data.get("expiresIn", "(default)"))
        return info


# --------------------------------------------------------------------------
# PDF helpers
# --------------------------------------------------------------------------


def make_test_pdf(index: int) -> bytes:
    """A one-page PDF with a line of text, built with pyHanko's writer."""
    w = PdfFileWriter()
    font = w.add_object(generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Font"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
        generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
    }))
    text = f"rssp pyHanko interop test document {index}".encode("ascii")
    content = w.add_object(generic.StreamObject(
        stream_data=b"BT /F1 14 Tf 72 770 Td (" + text + b") Tj ET"))
    page = generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Page"),
        generic.pdf_name("/MediaBox"): generic.ArrayObject(
            [generic.NumberObject(x) for x in (0, 0, 595, 842)]),
        generic.pdf_name("/Resources"): generic.DictionaryObject({
            generic.pdf_name("/Font"): generic.DictionaryObject(
                {generic.pdf_name("/F1"): font}),
        }),
        generic.pdf_name("/Contents"): content,
    })
    w.insert_page(page)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


async def sign_one(signer: CSCSigner, index: int) -> bytes:
    pdf = IncrementalPdfFileWriter(io.BytesIO(make_test_pdf(index)))
    meta = signers.PdfSignatureMetadata(
        field_name="Signature1",
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=f"rssp interop test {index}",
    )
    out = await signers.async_sign_pdf(pdf, meta, signer=signer)
    return out.getvalue()


def split_cms(raw_contents: bytes) -> bytes:
    """/Contents is zero-padded; return exactly the DER ContentInfo."""
    ci = cms.ContentInfo.load(raw_contents, strict=False)
    der = ci.dump()
    if not raw_contents.startswith(der) or raw_contents[len(der):].strip(b"\0"):
        raise InteropError("signature /Contents is not DER CMS + zero padding")
    return der


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def load_root(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        data = f.read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def describe_cert(c: x509.Certificate) -> str:
    return (f"{c.subject.human_friendly} [{c.public_key.algorithm}"
            f" {c.public_key.bit_size}]")


async def run(args) -> None:
    base = args.url.rstrip("/")
    root = load_root(args.root_pem)
    os.makedirs(args.out_dir, exist_ok=True)
    http_log = HttpLog()
    totp = TotpSource(args.totp_secret)

    async with aiohttp.ClientSession(
        trace_configs=[http_log.trace_config()],
        timeout=aiohttp.ClientTimeout(total=60),
    ) as http:
        token = await login(http, base, args.username, args.password)
        session_info = CSCServiceSessionInfo(
            service_url=base, credential_id=args.credential_id,
            oauth_token=token,
        )
        try:
            cred = await fetch_certs_in_csc_credential(http, session_info)
        except SigningError as e:
            raise InteropError(f"credentials/info: {e!r} "
                               f"(cause: {e.__cause__!r})")
        log.info("credential: signer=%s chain=%d cert(s) algos=%s "
                 "multisign=%d hash_pinning(SCAL2)=%s",
                 describe_cert(cred.signing_cert), len(cred.chain),
                 sorted(cred.supported_mechanisms), cred.max_batch_size,
                 cred.hash_pinning_required)
        if cred.max_batch_size < args.batch:
            raise InteropError(f"credential multisign={cred.max_batch_size} "
                               f"< --batch {args.batch}")

        auth = TotpAuthorizationManager(session_info, cred, http, totp)
        signer = CSCSigner(http, auth_manager=auth, batch_size=args.batch,
                           batch_autocommit=True, prefer_pss=args.prefer_pss)
        # one more sanity check before any HTTP: pyHanko must find its
        # preferred mechanism in key.algo
        try:
            mech = signer.get_signature_mechanism_for_digest("sha256")
        except SigningError as e:
            raise InteropError(f"signature mechanism: {e}")
        log.info("pyHanko will request signAlgo=%s (%s)",
                 mech["algorithm"].dotted, mech["algorithm"].native)

        try:
            signed = await asyncio.wait_for(
                asyncio.gather(*(sign_one(signer, i + 1)
                                 for i in range(args.batch))),
                timeout=args.timeout)
        except asyncio.TimeoutError:
            raise InteropError("signing did not complete in time (did every "
                               "document reach the batch?)")
        except SigningError as e:
            # CSCSigner swallows commit errors (it logs them) and then
            # reports "No signing results available"; surface the real cause.
            bad = [f"{r.path} -> HTTP {r.status}" for r in http_log.records
                   if r.status is None or r.status // 100 != 2]
            detail = f" [{auth.last_error}]" if auth.last_error else ""
            detail += f" failed requests: {bad}" if bad else ""
            raise InteropError(f"signing failed: {e} (cause: "
                               f"{e.__cause__!r}){detail}")

    # ---- request sequence check -------------------------------------------
    # Exactly: login, info, authorize, signHash.  A replay-rejected OTP
    # (4xx) followed by one retry in the next time step is tolerated.
    seq = [(r.method, r.path.rsplit("/csc/v1/", 1)[-1], r.status)
           for r in http_log.records]
    if auth.otp_retries:
        rejected = [i for i, (_, p, st) in enumerate(seq)
                    if p == "credentials/authorize"
                    and (st is None or st // 100 != 2)]
        if len(rejected) != auth.otp_retries:
            raise InteropError(f"confusing authorize retries in {seq}")
        records = [r for i, r in enumerate(http_log.records)
                   if i not in rejected]
    else:
        records = list(http_log.records)
    got = [(r.method, r.path.rsplit("/csc/v1/", 1)[-1]) for r in records]
    expected = [("POST", "auth/login"), ("POST", "credentials/info"),
                ("POST", "credentials/authorize"),
                ("POST", "signatures/signHash")]
    if got != expected or auth.calls != 1:
        raise InteropError(f"unexpected HTTP request sequence {seq}, "
                           f"expected {expected} (authorize_signature "
                           f"called {auth.calls}x)")
    for r in records[2:]:
        if r.n_hashes != args.batch:
            raise InteropError(f"{r.path} carried {r.n_hashes} hashes, "
                               f"expected {args.batch}")
    sign_req = records[3]
    for k in ("credentialID", "SAD", "hashAlgo", "signAlgo", "hash"):
        if k not in sign_req.body_fields:
            raise InteropError(f"signHash request lacks {k}")

    # ---- validation --------------------------------------------------------
    failures = []
    for i, data in enumerate(signed, start=1):
        name = f"sig{i}"
        with open(os.path.join(args.out_dir, f"{name}.pdf"), "wb") as f:
            f.write(data)
        try:
            summary = await check_signed_pdf(data, name, root, args)
            print(f"OK   {name}: {summary}")
        except InteropError as e:
            print(f"FAIL {name}: {e}")
            failures.append(name)
    if failures:
        raise InteropError(f"{len(failures)} of {len(signed)} signature(s) "
                           f"failed: {', '.join(failures)}")
    print(f"pyHanko interop: {len(signed)} signature(s) OK with "
          f"{len(http_log.records)} HTTP requests "
          f"(1 authorization, 1 signHash for {args.batch} hashes"
          f"{', 1 OTP retry' if auth.otp_retries else ''})")


async def check_signed_pdf(data: bytes, name: str, root: x509.Certificate,
                           args) -> str:
    reader = PdfFileReader(io.BytesIO(data))
    if len(reader.embedded_signatures) != 1:
        raise InteropError(f"expected 1 signature, found "
                           f"{len(reader.embedded_signatures)}")
    sig = reader.embedded_signatures[0]

    vc = ValidationContext(
        trust_roots=[root],
        allow_fetching=False,          # offline: CRL/AIA URLs are not followed
        revocation_mode="soft-fail",
    )
    ku = None
    if args.key_usage:
        ku = KeyUsageConstraints(key_usage=set(args.key_usage.split(",")))
    status = await async_validate_pdf_signature(
        sig, signer_validation_context=vc, key_usage_settings=ku)
    if not (status.intact and status.valid and status.trusted
            and status.bottom_line):
        hints = []
        cert = sig.signer_cert
        if status.intact and not status.valid:
            hints.append("signature value does not verify"
                         + (" (ECDSA signatures returned by signHash must be "
                            "DER SEQUENCE{r,s}, not raw r||s)"
                            if cert.public_key.algorithm == "ec" else ""))
        if status.valid and not status.trusted:
            ku = cert.key_usage_value
            ku = set(ku.native) if ku is not None else set()
            hints.append(f"trust problem: {status.trust_problem_indic}; "
                         f"signer key usage={sorted(ku)} (pyHanko requires "
                         f"{args.key_usage or 'non_repudiation'} by default)")
        raise InteropError(
            f"pyHanko: intact={status.intact} valid={status.valid} "
            f"trusted={status.trusted} bottom_line={status.bottom_line}\n  "
            + "\n  ".join(hints) + "\n" + status.pretty_print_details())
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise InteropError(f"coverage is {status.coverage}")

    # ---- export for openssl ---------------------------------------------
    der = split_cms(sig.pkcs7_content)
    a, b, c, d = (int(x) for x in sig.byte_range)
    content = data[a:a + b] + data[c:c + d]
    p7s = os.path.join(args.out_dir, f"{name}.p7s")
    content_path = os.path.join(args.out_dir, f"{name}.content")
    with open(p7s, "wb") as f:
        f.write(der)
    with open(content_path, "wb") as f:
        f.write(content)
    cmd = [args.openssl, "cms", "-verify", "-binary", "-inform", "DER",
           "-in", p7s, "-content", content_path, "-CAfile", args.root_pem,
           "-purpose", "any", "-out", os.devnull]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InteropError(f"openssl cms -verify failed ({proc.returncode}): "
                           f"{proc.stderr.strip()}\n  cmd: {' '.join(cmd)}")

    si = sig.signer_info
    algo = si["signature_algorithm"]["algorithm"]
    if args.prefer_pss:
        if algo.native != "rsassa_pss":
            raise InteropError(f"expected an RSASSA-PSS signature, got {algo.native}")
        salt = si["signature_algorithm"]["parameters"]["salt_length"].native
        log.info("%s: RSASSA-PSS with a %d-byte salt", name, salt)
    n_certs = len(sig.signed_data["certificates"])
    path = " <- ".join(c.subject.native.get("common_name", "?")
                       for c in reversed(list(status.validation_path)))
    return (f"signer={sig.signer_cert.subject.human_friendly!r} "
            f"sigAlg={algo.native}({algo.dotted}) md={sig.md_algorithm} "
            f"certs_in_cms={n_certs} path=[{path}] "
            f"pyHanko=INTACT/VALID/TRUSTED openssl=Verification successful")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True,
                   help="server base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--credential-id", required=True)
    p.add_argument("--totp-secret", required=True, help="base32 TOTP secret")
    p.add_argument("--root-pem", required=True, help="root CA certificate")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--batch", type=int, default=3,
                   help="number of PDFs signed in one batch (default 3)")
    p.add_argument("--key-usage", default=None,
                   help="comma-separated key usages of which the signer cert "
                        "needs at least one (default: pyHanko's default, "
                        "non_repudiation)")
    p.add_argument("--prefer-pss", action="store_true",
                   help="RSA keys: ask for RSASSA-PSS (pyHanko sends the "
                        "longest salt the key allows)")
    p.add_argument("--openssl", default="openssl")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds allowed for the signing phase")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    if args.batch < 1:
        p.error("--batch must be >= 1")

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("pyhanko").setLevel(logging.WARNING)
        logging.getLogger("pyhanko_certvalidator").setLevel(logging.WARNING)
    try:
        try:
            asyncio.run(run(args))
        except (aiohttp.ClientError, OSError) as e:
            raise InteropError(f"HTTP/IO error: {e!r}")
    except InteropError as e:
        print(f"pyHanko interop FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
