#!/usr/bin/env bash
# Fuzzing in CI: schemathesis over the OpenAPI document that `rssp serve` itself serves, on the CSC
# (v1, v2) and lifecycle (/api/v1, /api/admin/v1) surfaces, with the checks `not_a_server_error` and
# `response_schema_conformance`: any 5xx, any answer whose body contradicts the schema the document
# gives for that status, or a server that dies fails the run. (An answer with a status the document
# does not list is not checked: schemathesis' `status_code_conformance` is off, see the README here.)
# A run that made fewer than 1000 requests, or got fewer than 100 2xx answers, fails too. Bounded in
# time (FUZZ_MAX_TIME seconds of generation, 150 by default, and a hard stop after twice that). Builds
# nothing: it runs the debug binary that `cargo build --bin rssp` made (or RSSP_TEST_BIN).
#
# It also watches the server's resident memory (VmRSS in /proc/<pid>/status): once before fuzzing (the
# server has started, signed in and served a few requests) and again after the run has ended and the
# server has been idle for a moment. The run fails when the memory does not come back near its start:
# after <= before + max(FUZZ_RSS_SLACK_MB, 50% of before). The slack allows what a server keeps on
# purpose after its first few thousand requests (connection pools filled up to their size, each
# worker's HTTP buffers, allocator arenas for the bounded set of threads); growth with the number of
# requests, as in the issue (103 MB to 495 MB), is far outside it.
#
# Usage: conformance-tests/fuzz/run.sh        (FUZZ_MAX_TIME=600 for a longer run; FUZZ_SEED to repeat one;
#        FUZZ_CHECKS=all,... for more of schemathesis' checks)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rssp="${RSSP_TEST_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/rssp}"
venv="${RSSP_TEST_VENV:-$root/.venv}"
max_time="${FUZZ_MAX_TIME:-150}"
slack_mb="${FUZZ_RSS_SLACK_MB:-64}"
checks="${FUZZ_CHECKS:-not_a_server_error,response_schema_conformance}"

[ -x "$rssp" ] || { echo "no rssp binary at $rssp: run cargo build --bin rssp first"; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
want="$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")"
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Only this run's settings: the embedded default (development mode) under a fresh data directory.
. "$here/../start-rssp.sh"
# No panic backtraces: symbolising one loads the debug binary's DWARF (~200 MB) into the process for good,
# which would drown the memory figure. A panic's message and place are still logged (and its 500 fails
# the run anyway).
start_rssp RUST_BACKTRACE=0

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }

# Who the fuzzer is: a signer (CSC), a person with a lifecycle session, an operator (admin API).
password="schemathesis runs 42"
"$rssp" provision-user --username fuzz --password "$password" --key ec-p256 --multisign 10 > "$work/signer.json"
operator_key="$("$rssp" operator create --name fuzz | grep -o 'rsspop_[A-Za-z0-9_-]*' | head -n1)"
[ -n "$operator_key" ] || { echo "rssp operator create printed no key"; exit 1; }
"$venv/bin/python" "$here/setup_auth.py" --url "$url" --username fuzz --password "$password" \
  --operator-key "$operator_key" > "$work/tokens.json"
token() { "$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/tokens.json" "$1"; }

# Each surface gets its own credentials; the CSC logins get HTTP Basic from the security scheme.
cat > "$work/schemathesis.toml" <<TOML
[cache]
directory = "$work/schemathesis-cache"

[auth.openapi.basic]
username = "fuzz"
password = "$password"

[[operations]]
include-path-regex = '^/csc/v[12]/(?!auth/login$)'
headers = { Authorization = "Bearer $(token csc_token)" }

[[operations]]
include-path-regex = '^/api/v1/(?!logout$)'
headers = { Authorization = "Bearer $(token portal_token)" }

[[operations]]
include-path = '/api/v1/logout'
headers = { Authorization = "Bearer $(token logout_token)" }

[[operations]]
include-path-regex = '^/api/admin/v1/'
headers = { Authorization = "Bearer $operator_key" }
TOML

sleep 1
rss_before=$(rss_kb)
echo "RSS before fuzzing: $((rss_before / 1024)) MB"

status=0
seed_args=()
[ -n "${FUZZ_SEED:-}" ] && seed_args=(--seed "$FUZZ_SEED")
timeout --signal=INT $((max_time * 2 + 60)) "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run \
  "$url/openapi.json" \
  --include-path-regex '^/(csc/v[12]|api/v1|api/admin/v1)/' \
  --checks "$checks" \
  --phases examples,coverage,fuzzing \
  --max-time "$max_time" \
  --workers 2 \
  --no-color \
  --report ndjson --report-ndjson-path "$work/events.ndjson" \
  "${seed_args[@]}" \
  | tee "$work/schemathesis.out" || status=$?

kill -0 "$server_pid" 2>/dev/null || { echo "FAIL: the server died during fuzzing"; tail -n 50 "$work/serve.err"; exit 1; }
"$venv/bin/python" - "$work/events.ndjson" > "$work/counts.txt" <<'PY'
import collections, json, sys
count, statuses = 0, collections.Counter()
for line in open(sys.argv[1]):
    event = json.loads(line)
    # Every request schemathesis sent is one interaction in a ScenarioFinished event.
    for kind, data in event.items():
        if kind == "ScenarioFinished":
            for interaction in data.get("recorder", {}).get("interactions", {}).values():
                count += 1
                statuses[(interaction.get("response") or {}).get("status_code", "none")] += 1
print(count)
print(", ".join(f"{status}: {n}" for status, n in sorted(statuses.items(), key=lambda s: str(s[0]))))
print(sum(n for status, n in statuses.items() if isinstance(status, int) and 200 <= status < 300))
PY
requests=$(sed -n 1p "$work/counts.txt")
echo "answers by status: $(sed -n 2p "$work/counts.txt")"
echo "generated requests: $requests"
# A run that never got past authentication (a lost token, say) would pass the checks while testing
# nothing: it must have made enough requests, and enough of them must have succeeded.
successes=$(sed -n 3p "$work/counts.txt")
if [ "${requests:-0}" -lt 1000 ] || [ "${successes:-0}" -lt 100 ]; then
  echo "FAIL: too little was tested ($requests requests, $successes answered 2xx; at least 1000 and 100 expected)"
  status=1
fi

# Let in-flight work and the background workers settle, then measure again.
sleep 5
rss_after=$(rss_kb)
bound=$((rss_before + (rss_before / 2 > slack_mb * 1024 ? rss_before / 2 : slack_mb * 1024)))
echo "RSS after fuzzing: $((rss_after / 1024)) MB (before: $((rss_before / 1024)) MB, bound: $((bound / 1024)) MB)"
if [ "$rss_after" -gt "$bound" ]; then
  echo "FAIL: resident memory did not come back near its start"
  status=1
fi
# What the server said about any 5xx or panic.
grep -E ' 5[0-9][0-9] |panicked' -A1 "$work/serve.err" | tail -n 40 || true
exit $status
