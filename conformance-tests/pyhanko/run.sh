#!/usr/bin/env bash
# Interoperability in CI: the real `rssp serve` on the embedded default (fresh data directory, port 0),
# signers created with `rssp provision-user` while it runs, and pyHanko's CSCSigner signing PDFs
# through /csc/v1 with an RSA and an EC credential (a batch of 3 hashes under one SAD each), and with
# the RSA credential again in RSASSA-PSS (pyHanko's prefer_pss: the longest salt the key allows). pyHanko
# validates every signature as intact, valid and trusted against `rssp pki root-cert`, and
# `openssl cms -verify` checks each CMS. Then PAdES B-T and B-LT with rssp's own trust services:
# pyHanko time-stamps through POST /tsa and embeds OCSP responses from /ocsp, and the signature is
# validated again with rssp stopped, from the document alone. Last, CSC v2 signDoc: pyHanko prepares a
# PDF, rssp returns the CMS of a PAdES-B-T signature for its /ByteRange digest, pyHanko embeds and
# validates it; rssp signs a whole PDF twice (certification, then approval), pyHanko validates both; a
# whole PDF at B-LTA, validated offline from its DSS; and a detached CAdES-B-T of a whole file, validated
# by pyHanko against that file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rssp="${RSSP_TEST_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/rssp}"
venv="${RSSP_TEST_VENV:-$root/.venv}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import pyhanko, pyotp, aiohttp' 2>/dev/null; then
  "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Only this run's settings: the embedded default under a fresh data directory.
. "$here/../start-rssp.sh"
start_rssp

"$rssp" pki root-cert > "$work/root.pem"
status=0
for run in rsa-2048 ec-p256 rsa-2048-pss; do
  key="${run%-pss}"
  extra=()
  [ "$run" != "$key" ] && extra=(--prefer-pss)
  user="interop-${run}"
  "$rssp" provision-user --username "$user" --password "interop password 2026" --key "$key" --multisign 10 > "$work/$user.json"
  field() { "$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/$user.json" "$1"; }
  echo "== pyHanko signs through /csc/v1 with $run"
  if ! "$venv/bin/python" "$here/sign_and_validate.py" --url "$url" --username "$user" --password "interop password 2026" \
      --credential-id "$(field credential_id)" --totp-secret "$(field totp_secret)" \
      --root-pem "$work/root.pem" --out-dir "$work/out-$run" --batch 3 "${extra[@]}"; then
    status=1
  fi
done
echo "== pyHanko: PAdES B-T with rssp's TSA and B-LT with rssp's OCSP responder"
user="interop-long-term"
# The certificate must name this server's OCSP and CRL URLs: the command is told the running server's URL.
RSSP_PUBLIC_URL="$url" "$rssp" provision-user --username "$user" --password "interop password 2026" --key ec-p256 > "$work/$user.json"
field() { "$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/$user.json" "$1"; }
if ! "$venv/bin/python" "$here/long_term.py" sign --url "$url" --username "$user" --password "interop password 2026" \
    --credential-id "$(field credential_id)" --totp-secret "$(field totp_secret)" \
    --root-pem "$work/root.pem" --out "$work/long-term.pdf"; then
  status=1
fi
echo "== pyHanko: CSC v2 signDoc (a PAdES-B-T CMS embedded by pyHanko, a whole PDF signed twice, a B-LTA PDF, a detached CAdES-B-T and B-LT)"
user="interop-signdoc"
"$rssp" provision-user --username "$user" --password "interop password 2026" --key ec-p256 --multisign 3 > "$work/$user.json"
if ! "$venv/bin/python" "$here/sign_doc.py" --url "$url" --username "$user" --password "interop password 2026" \
    --credential-id "$(field credential_id)" --totp-secret "$(field totp_secret)" --root-pem "$work/root.pem"; then
  status=1
fi
"$rssp" audit verify
kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
server_pid=""
echo "== pyHanko: the B-LT signature validates with rssp stopped"
if [ -f "$work/long-term.pdf" ] && ! "$venv/bin/python" "$here/long_term.py" validate --root-pem "$work/root.pem" --file "$work/long-term.pdf"; then
  status=1
fi
# The CLI's adesverify is shown, not judged: with rssp stopped it fails on "no revocation information",
# because pyHanko 0.38, allowed to fetch, asks the OCSP responder a certificate names and does not fall
# back to the responses in the DSS. long_term.py validate runs the same AdES validation with fetching
# off (LOCAL_ONLY), which is the judged check.
if [ -f "$work/long-term.pdf" ]; then
  echo "== (informational) pyhanko sign adesverify, offline"
  "$venv/bin/pyhanko" sign adesverify --trust "$work/root.pem" --trust-replace "$work/long-term.pdf" 2>&1 | tail -1 || true
fi
exit $status
