//! Document signing: `signatures/signDoc` PAdES of a whole PDF (B-B and B-T) for a 100 KB, a 5 MB and a
//! 50 MB PDF, one request after another, against pyHanko signing the same PDF on the same machine with a
//! software key of the same type (P-256), the alternative a user has; and the server's peak resident
//! memory (VmHWM) after each size.
//!
//!     cargo bench --bench documents          (RSSP_BENCH_ROUNDS scales the rounds per size, default 1;
//!                                             RSSP_BENCH_SIZES=50MB measures only the sizes named)
//!
//! The server is the release `rssp serve` binary on its embedded default (SQLite, SoftHSM) in a
//! temporary data directory, as a child process, so that its memory is its own, with the glibc setting
//! of deploy/rssp.service (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`; `GLIBC_TUNABLES=` measures
//! without it). pyHanko runs from the project's `.venv` (conformance-tests/pyhanko); without it that
//! column is skipped.
//!
//! Each signature needs a SAD bound to its document; the SADs are written into the server's store ahead
//! of each measurement, as `credentials/authorize` would after a code. A measurement, not a test:
//! nothing here asserts a speed.
//!
//! Latency is the time from sending the request to the answer's last byte, as HTTP load tools measure
//! it: the client reads the answer as it arrives and checks its length and its ends, but does not copy
//! it into one buffer (for 50 MB that copy, into fresh memory, took the client about 60 ms here, which
//! is the client's work, not the server's). One untimed request per size and level goes first: its
//! answer is read whole and its signed PDF checked to start with the original; it also leaves the
//! server as a running server is, with its large buffers in use.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use lopdf::{Dictionary, Document, Object, Stream};
use rssp::domain::{secrets, HashAlgorithm};
use serde_json::{json, Value};

mod support;
use support::percentile;

const SIZES: [(&str, usize, usize); 3] = [("100 KB", 100 * 1024, 20), ("5 MB", 5 << 20, 6), ("50 MB", 50 << 20, 2)];

/// A one-page PDF padded to about `size` bytes with an incompressible stream (as a scanned page would be).
fn pdf_of(size: usize) -> Vec<u8> {
    let mut document = Document::with_version("1.7");
    let pages_id = document.new_object_id();
    let content = Stream::new(Dictionary::new(), b"BT /F1 12 Tf 72 720 Td (A document to sign) Tj ET".to_vec());
    let content_id = document.add_object(content);
    let mut padding = vec![0u8; size.saturating_sub(2048)];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for byte in padding.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let mut image = Dictionary::new();
    image.set("Type", Object::Name(b"XObject".to_vec()));
    image.set("Subtype", Object::Name(b"Image".to_vec()));
    image.set("Width", 1);
    image.set("Height", padding.len() as i64);
    image.set("ColorSpace", Object::Name(b"DeviceGray".to_vec()));
    image.set("BitsPerComponent", 8);
    let image_id = document.add_object(Stream::new(image, padding).with_compression(false));
    let mut xobjects = Dictionary::new();
    xobjects.set("Im1", Object::Reference(image_id));
    let mut resources = Dictionary::new();
    resources.set("XObject", Object::Dictionary(xobjects));
    let mut page = Dictionary::new();
    page.set("Type", Object::Name(b"Page".to_vec()));
    page.set("Parent", Object::Reference(pages_id));
    page.set("MediaBox", vec![0.into(), 0.into(), 595.into(), 842.into()]);
    page.set("Contents", Object::Reference(content_id));
    page.set("Resources", Object::Dictionary(resources));
    let page_id = document.add_object(page);
    let mut pages = Dictionary::new();
    pages.set("Type", Object::Name(b"Pages".to_vec()));
    pages.set("Kids", vec![Object::Reference(page_id)]);
    pages.set("Count", 1);
    document.objects.insert(pages_id, Object::Dictionary(pages));
    let mut catalog = Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", Object::Reference(pages_id));
    let catalog_id = document.add_object(catalog);
    document.trailer.set("Root", Object::Reference(catalog_id));
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

/// The glibc setting deploy/rssp.service gives the server: large allocations on transparent huge pages.
const HUGE_PAGES: &str = "glibc.malloc.hugetlb=1";

/// The release `rssp`, without this benchmark's own settings (rssp refuses `RSSP_` variables it does not
/// know).
fn rssp_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rssp"));
    command.env_remove("RSSP_BENCH_ROUNDS").env_remove("RSSP_BENCH_SIZES");
    command
}

/// `rssp serve` on the embedded default in `dir`, and its URL.
fn serve(dir: &Path) -> (Child, String) {
    let mut child = rssp_command()
        .arg("serve")
        .env("RSSP_DATA_DIR", dir)
        .env("RSSP_LISTEN", "127.0.0.1:0")
        .env("RSSP_LOG", "warn")
        .env("RSSP_MAX_SIGNDOC_DOCUMENT_BYTES", (64usize << 20).to_string())
        .env("RSSP_ACCESS_TOKEN_LIFETIME_SECS", "86400")
        .env_remove("SOFTHSM2_CONF")
        // As deploy/rssp.service runs it, unless the caller sets GLIBC_TUNABLES (empty: glibc's default).
        .env("GLIBC_TUNABLES", std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| HUGE_PAGES.into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rssp serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("rssp serve said where it listens").unwrap();
        if let Some(url) = line.strip_prefix("rssp listening on ") {
            break url.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// A person with an unlimited package, through the CLI beside the running server: (user id, credential id).
fn provision(dir: &Path) -> (String, String) {
    let mut child = rssp_command()
        .args(["provision-user", "--username", "bench-documents", "--password-stdin", "--key", "ec-p256"])
        .env("RSSP_DATA_DIR", dir)
        .env("RSSP_LOG", "warn")
        .env_remove("SOFTHSM2_CONF")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"bench password 2026\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let provisioned: Value = serde_json::from_slice(&out.stdout).expect("provision-user prints JSON");
    (provisioned["user_id"].as_str().unwrap().into(), provisioned["credential_id"].as_str().unwrap().into())
}

/// SADs bound to `document`'s SHA-256, one per round, written into the server's SQLite store.
fn mint_sads(dir: &Path, user_id: &str, credential_id: &str, document: &[u8], rounds: usize) -> Vec<String> {
    use rssp::db::sads::{self, SadRow};
    let url = format!("sqlite://{}", dir.join("rssp.sqlite").display());
    let pool = rssp::db::connect(&url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let bound = rssp::domain::sad::encode_hashes(&[HashAlgorithm::Sha256.digest(document)]);
    let tokens: Vec<String> = (0..rounds).map(|_| secrets::new_token()).collect();
    for token in &tokens {
        let row = SadRow {
            digest: secrets::token_digest(token),
            user_id: user_id.into(),
            credential_id: credential_id.into(),
            hashes: bound.clone(),
            num_signatures: 1,
            used: 0,
            expires_at: now + 3600,
            revoked: false,
            chain_expires_at: now + 3600,
            client_id: None,
        };
        sads::insert(&mut conn, &row).unwrap();
    }
    tokens
}

/// The peak resident memory of process `pid` so far (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// pyHanko signing `pdf` locally `rounds` times with a software P-256 key: the median seconds, or None
/// without the project's venv.
fn pyhanko_local(pdf: &Path, rounds: usize) -> Option<Duration> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pyhanko_local_sign.py");
    if !python.exists() {
        return None;
    }
    let out = Command::new(python).arg(script).arg(pdf).arg(rounds.to_string()).output().ok()?;
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
}

fn main() {
    let scale: usize = std::env::var("RSSP_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(dir.path());
    let (user_id, credential_id) = provision(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();
    let token: String = runtime.block_on(async {
        let answer: Value = client
            .post(format!("{url}/csc/v2/auth/login"))
            .basic_auth("bench-documents", Some("bench password 2026"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_string()
    });
    println!(
        "rssp document signing benchmark: signDoc P (whole PDF, ECDSA P-256), one request after another; \
         release rssp serve on SQLite and SoftHSM, GLIBC_TUNABLES={:?}; peak RSS after startup {:.0} MiB",
        std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| HUGE_PAGES.into()),
        peak_rss_mib(server.id())
    );
    println!(
        "{:<8} {:<9} {:>6} {:>10} {:>10} {:>10} {:>12} {:>8} {:>14}",
        "size", "level", "rounds", "p50", "max", "docs/s", "pyHanko p50", "ratio", "server peak RSS"
    );
    let files = tempfile::tempdir().unwrap();
    let only = std::env::var("RSSP_BENCH_SIZES").ok();
    let wanted = |name: &str| {
        only.as_deref().is_none_or(|only| only.split(',').any(|o| o.eq_ignore_ascii_case(&name.replace(' ', ""))))
    };
    assert!(SIZES.iter().any(|(name, ..)| wanted(name)), "RSSP_BENCH_SIZES names none of 100KB, 5MB, 50MB");
    for (name, size, rounds) in SIZES.into_iter().filter(|(name, ..)| wanted(name)) {
        let rounds = rounds * scale;
        let pdf = pdf_of(size);
        let path = files.path().join(format!("{size}.pdf"));
        std::fs::write(&path, &pdf).unwrap();
        let local = pyhanko_local(&path, rounds.min(5));
        let body_document = base64::engine::general_purpose::STANDARD.encode(&pdf);
        for level in ["Ades-B-B", "Ades-B-T"] {
            let mut sads = mint_sads(dir.path(), &user_id, &credential_id, &pdf, rounds + 1).into_iter();
            let request = |sad: String| {
                let body = json!({"credentialID": credential_id, "SAD": sad, "documents": [
                    {"document": body_document, "signature_format": "P", "conformance_level": level,
                     "signAlgo": "1.2.840.10045.4.3.2"}]})
                .to_string();
                client
                    .post(format!("{url}/csc/v2/signatures/signDoc"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
            };
            // Untimed: the whole answer, checked.
            let answer: Value = runtime.block_on(async {
                let response = request(sads.next().unwrap()).send().await.unwrap();
                assert_eq!(response.status(), 200, "signDoc {name} {level}");
                response.json().await.unwrap()
            });
            let signed = base64::engine::general_purpose::STANDARD
                .decode(answer["DocumentWithSignature"][0].as_str().unwrap())
                .unwrap();
            assert!(signed.starts_with(&pdf) && signed.len() > pdf.len(), "an incremental update of {name}");
            let mut latencies = Vec::new();
            let started = Instant::now();
            for sad in sads {
                let request = request(sad);
                let began = Instant::now();
                runtime.block_on(async {
                    let mut response = request.send().await.unwrap();
                    assert_eq!(response.status(), 200, "signDoc {name} {level}");
                    let length = response.content_length().expect("an answer of known length");
                    // Read as it arrives; its length and its ends checked.
                    let (mut read, mut first, mut last) = (0u64, Vec::new(), Vec::new());
                    while let Some(chunk) = response.chunk().await.unwrap() {
                        read += chunk.len() as u64;
                        if first.len() < 64 {
                            first.extend_from_slice(&chunk[..chunk.len().min(64)]);
                        }
                        last.extend_from_slice(&chunk[chunk.len().saturating_sub(3)..]);
                        last.drain(..last.len().saturating_sub(3));
                    }
                    assert_eq!(read, length, "the whole answer");
                    assert!(
                        first.starts_with(b"{\"DocumentWithSignature\":[\"JVBERi0"),
                        "a signed PDF: {}",
                        String::from_utf8_lossy(&first)
                    );
                    assert!(last.ends_with(b"\"]}"), "to its end");
                });
                latencies.push(began.elapsed());
            }
            let total = started.elapsed();
            latencies.sort();
            let p50 = percentile(&latencies, 0.5);
            let (pyhanko, ratio) = match local {
                Some(local) => (format!("{:.1?}", local), format!("{:.2}", p50.as_secs_f64() / local.as_secs_f64())),
                None => ("skipped".into(), "-".into()),
            };
            println!(
                "{:<8} {:<9} {:>6} {:>10.1?} {:>10.1?} {:>10.2} {:>12} {:>8} {:>10.0} MiB",
                name,
                level,
                rounds,
                p50,
                latencies.last().copied().unwrap_or_default(),
                rounds as f64 / total.as_secs_f64(),
                pyhanko,
                ratio,
                peak_rss_mib(server.id())
            );
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}
