#!/usr/bin/env bash
# Rebuilds the PDF corpus the signDoc tests sign (the files are committed; this says how they were made).
# Needs ghostscript, qpdf and the pyHanko venv of conformance-tests/pyhanko (`.venv` at the project root),
# and for the files of other producers chromium, pdflatex (texlive-latex-base) and soffice
# (libreoffice-writer-nogui); none of them is needed to run the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-$here/../../.venv/bin/python}"
cd "$here"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat > "$work/page.ps" <<'PS'
%!PS
/Helvetica findfont 14 scalefont setfont
72 770 moveto (A contract made with Ghostscript) show
72 740 moveto (Second line of the contract.) show
showpage
PS
# Ghostscript's pdfwrite: PDF 1.7 with a cross-reference table, and a PDF 1.4 one.
gs -q -dNOPAUSE -dBATCH -dSAFER -sDEVICE=pdfwrite -dCompatibilityLevel=1.7 -sOutputFile=ghostscript-1.7.pdf "$work/page.ps"
gs -q -dNOPAUSE -dBATCH -dSAFER -sDEVICE=pdfwrite -dCompatibilityLevel=1.4 -sOutputFile=ghostscript-1.4.pdf "$work/page.ps"
# Other producers: Chromium's print to PDF (Skia/PDF, two pages, embedded fonts), pdfTeX (PDF 1.5 with
# object streams), LibreOffice Writer (PDF 1.6).
cat > "$work/page.html" <<'HTML'
<!doctype html><html><head><meta charset="utf-8"><title>A contract printed by Chromium</title>
<style>body{font-family:serif;margin:2cm} table{border-collapse:collapse} td{border:1px solid #333;padding:4px}</style></head>
<body><h1>Service agreement</h1><p>This agreement was printed to PDF by Chromium (Skia/PDF). Žluťoučký kůň, ščćž.</p>
<table><tr><td>Party</td><td>Ana Novak</td></tr><tr><td>Date</td><td>2026-12-02</td></tr></table>
<p style="page-break-before:always">Second page: signatures below.</p></body></html>
HTML
chromium --headless --no-sandbox --disable-gpu --no-pdf-header-footer --print-to-pdf="$here/chromium.pdf" "file://$work/page.html"
cat > "$work/contract.tex" <<'TEX'
\documentclass{article}
\title{A contract typeset by pdf\TeX}
\begin{document}
\maketitle
\section{Parties}
This agreement is made between the parties named below, and typeset with pdf\TeX.
\section{Terms}
The terms are set out in this section. $E = mc^2$.
\end{document}
TEX
(cd "$work" && pdflatex -interaction=nonstopmode contract.tex > /dev/null) && cp "$work/contract.pdf" pdftex.pdf
cat > "$work/letter.fodt" <<'FODT'
<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.text">
<office:body><office:text>
<text:h text:outline-level="1">A letter written in LibreOffice Writer</text:h>
<text:p>Dear Ana Novak, this letter was exported to PDF by LibreOffice. Čćžšđ.</text:p>
<text:p>Kind regards.</text:p>
</office:text></office:body></office:document>
FODT
soffice --headless --convert-to pdf --outdir "$work" "$work/letter.fodt" > /dev/null && cp "$work/letter.pdf" libreoffice.pdf
# qpdf: object streams with a cross-reference stream; linearized; PDF 2.0.
qpdf --object-streams=generate ghostscript-1.7.pdf qpdf-object-streams.pdf
qpdf --linearize ghostscript-1.7.pdf qpdf-linearized.pdf
qpdf --force-version=2.0 --object-streams=generate ghostscript-1.7.pdf qpdf-2.0.pdf
# Refused: encrypted with a user password, and with an owner password only (opens without one).
qpdf --encrypt user-secret owner-secret 256 -- ghostscript-1.7.pdf encrypted-user-password.pdf
qpdf --encrypt "" owner-secret 256 -- ghostscript-1.7.pdf encrypted-owner-password.pdf
# pyHanko's writer, an incremental update of it, a form with XFA, and a PDF certified with no changes allowed.
"$py" - <<'PY'
import io, datetime
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers, fields
from pyhanko.sign.fields import MDPPerm
from pyhanko_certvalidator.registry import SimpleCertificateStore
from asn1crypto import keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

def page_pdf(text):
    w = PdfFileWriter()
    font = w.add_object(generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Font"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
        generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica")}))
    content = w.add_object(generic.StreamObject(stream_data=b"BT /F1 14 Tf 72 770 Td (" + text + b") Tj ET"))
    w.insert_page(generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Page"),
        generic.pdf_name("/MediaBox"): generic.ArrayObject([generic.NumberObject(x) for x in (0, 0, 595, 842)]),
        generic.pdf_name("/Resources"): generic.DictionaryObject({generic.pdf_name("/Font"): generic.DictionaryObject({generic.pdf_name("/F1"): font})}),
        generic.pdf_name("/Contents"): content}))
    return w

out = io.BytesIO(); page_pdf(b"A document written by pyHanko").write(out)
open("pyhanko.pdf", "wb").write(out.getvalue())
inc = IncrementalPdfFileWriter(io.BytesIO(out.getvalue()))
inc.set_info(generic.DictionaryObject({generic.pdf_name("/Title"): generic.TextStringObject("Updated once")}))
inc.update_root()
buf = io.BytesIO(); inc.write(buf)
open("pyhanko-incremental.pdf", "wb").write(buf.getvalue())

w = page_pdf(b"A form with XFA")
xfa = w.add_object(generic.StreamObject(stream_data=b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'></xdp:xdp>"))
w.root[generic.pdf_name("/AcroForm")] = generic.DictionaryObject({
    generic.pdf_name("/Fields"): generic.ArrayObject([]), generic.pdf_name("/XFA"): xfa})
out = io.BytesIO(); w.write(out)
open("xfa-form.pdf", "wb").write(out.getvalue())

key = ec.generate_private_key(ec.SECP256R1())
name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "Corpus certifier")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(cx509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(key, hashes.SHA256()))
signer = signers.SimpleSigner(
    signing_cert=x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
    signing_key=keys.PrivateKeyInfo.load(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    cert_registry=SimpleCertificateStore())
meta = signers.PdfSignatureMetadata(field_name="Certification", certify=True, docmdp_permissions=MDPPerm.NO_CHANGES,
                                    subfilter=fields.SigSeedSubFilter.PADES)
out = io.BytesIO(); page_pdf(b"Certified: no changes allowed").write(out)
signed = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(out.getvalue())), meta, signer=signer)
open("certified-no-changes.pdf", "wb").write(signed.getvalue())
PY
ls -l "$here"/*.pdf
