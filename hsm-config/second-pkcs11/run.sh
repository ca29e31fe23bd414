#!/usr/bin/env bash
# Runs rssp's integration tests against a second PKCS#11 implementation, Kryoptic (a software token in
# Rust, from crates.io), to show that rssp is not tied to SoftHSM. See hsm-config/second-pkcs11/README.md.
#
#   hsm-config/second-pkcs11/run.sh                           # every integration test (tests/api/) on Kryoptic
#   hsm-config/second-pkcs11/run.sh --test api csc_signing::  # or any `cargo test` selection
#
# It installs what the build needs (Debian: libclang-dev for bindgen, libssl-dev, pkg-config,
# libsqlite3-dev), builds Kryoptic's module once into $RSSP_TEST_KRYOPTIC_DIR (default:
# <target dir>/kryoptic; a later run reuses it; the RSSP_TEST_ prefix keeps `rssp serve`, which the tests
# also start, from refusing it as an unknown setting), and runs the tests with RSSP_TEST_PKCS11=kryoptic:
# the harness (tests/api/common/mod.rs) writes a Kryoptic configuration with empty slots and initialises one
# token per test server through rssp's own PKCS#11 code. The tests run on SQLite (the database is not
# what is tried here).
set -euo pipefail
cd "$(dirname "$0")/../.."

KRYOPTIC_VERSION=1.5.4
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cache="${RSSP_TEST_KRYOPTIC_DIR:-$target_dir/kryoptic}"
module="$cache/libkryoptic_pkcs11-$KRYOPTIC_VERSION.so"

if [ ! -f "$module" ]; then
  missing=()
  for package in libclang-dev libssl-dev pkg-config libsqlite3-dev; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi

  echo "== building Kryoptic $KRYOPTIC_VERSION into $cache"
  started=$SECONDS
  mkdir -p "$cache/fetch/src"
  # The crate's source comes from crates.io like any dependency: a throw-away manifest names it, cargo
  # fetches it, and the crate is built from its own published Cargo.lock.
  cat >"$cache/fetch/Cargo.toml" <<TOML
[package]
name = "kryoptic-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
kryoptic = "=$KRYOPTIC_VERSION"

[workspace]
TOML
  : >"$cache/fetch/src/lib.rs"
  cargo fetch --quiet --manifest-path "$cache/fetch/Cargo.toml"
  crate_file=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"kryoptic-$KRYOPTIC_VERSION.crate" | head -n 1)
  rm -rf "$cache/src"
  mkdir -p "$cache/src"
  tar -xzf "$crate_file" -C "$cache/src"
  # Its own workspace, wherever the cache lies (for instance under a repository's target/).
  printf '\n[workspace]\n' >>"$cache/src/kryoptic-$KRYOPTIC_VERSION/Cargo.toml"
  # Debian 12 has OpenSSL 3.0: link it dynamically ("dynamic") and leave out what needs 3.2 or later
  # (EdDSA, ML-DSA, ...). "minimal" keeps what rssp uses: RSA (PKCS#1 v1.5, PSS), ECDSA on P-256/P-384,
  # AES (GCM), SHA-2, and the SQLite token store.
  CARGO_TARGET_DIR="$cache/target" cargo build --quiet --release --locked \
    --manifest-path "$cache/src/kryoptic-$KRYOPTIC_VERSION/Cargo.toml" \
    --no-default-features --features minimal,kryoptic-lib/dynamic
  cp "$cache/target/release/libkryoptic_pkcs11.so" "$module"
  echo "== Kryoptic built in $((SECONDS - started)) s ($(du -sh "$cache" | cut -f1) under $cache)"
fi

export RSSP_TEST_PKCS11=kryoptic
export RSSP_TEST_PKCS11_MODULE="$module"
export RSSP_TEST_POSTGRES_URL=

if [ $# -eq 0 ]; then
  set -- --test api
fi
echo "== rssp integration tests on Kryoptic $KRYOPTIC_VERSION ($module): cargo test $*"
started=$SECONDS
cargo test --quiet "$@"
# Kryoptic hands out EC points bare by default; a token that wraps them in a DER OCTET STRING (as the
# standard says and SoftHSM does) is the other case: the key generation and signing tests again with that.
echo "== again with EC points DER-wrapped (KRYOPTIC_EC_POINT_ENCODING=DER): hsm_algorithms, sole_control_hsm"
KRYOPTIC_EC_POINT_ENCODING=DER cargo test --quiet --test api -- hsm_algorithms:: sole_control_hsm::
echo "== the tests passed on Kryoptic in $((SECONDS - started)) s"
