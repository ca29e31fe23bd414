//! Sole control in the HSM and at rest: TOTP seeds are sealed by a non-extractable HSM key and bound to
//! their user; signing keys can sign and nothing else; CA keys are labelled apart; the data directory
//! and the database file are private to the service account.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::journey::Person;
use crate::common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use diesel::prelude::*;
use rssp::db::schema::{totp_factors, totp_pairings};
use rssp::domain::{secrets, KeyKind};
use secrecy::ExposeSecret;
use serde_json::json;

/// (user id, stored secret, seal) of every TOTP factor, read straight from the database.
fn stored_factors(server: &TestServer) -> Vec<(String, Vec<u8>, String)> {
    let mut conn = server.services().db.get().unwrap();
    totp_factors::table
        .select((totp_factors::user_id, totp_factors::secret, totp_factors::secret_seal))
        .load(&mut *conn)
        .unwrap()
}

fn stored_factor(server: &TestServer, user_id: &str) -> (Vec<u8>, String) {
    let (_, secret, seal) = stored_factors(server).into_iter().find(|(u, _, _)| u == user_id).expect("factor row");
    (secret, seal)
}

fn set_factor(server: &TestServer, user_id: &str, secret: &[u8], seal: &str) {
    let mut conn = server.services().db.get().unwrap();
    let n = diesel::update(totp_factors::table.filter(totp_factors::user_id.eq(user_id)))
        .set((totp_factors::secret.eq(secret), totp_factors::secret_seal.eq(seal)))
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(n, 1);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The stored value is not the seed, and carries neither its bytes nor its base32 form.
fn assert_not_the_seed(stored: &[u8], seed: &[u8], what: &str) {
    assert_ne!(stored, seed, "{what}: the seed is stored in clear");
    assert!(!contains(stored, seed), "{what}: the stored value contains the raw seed");
    let b32 = secrets::base32(seed);
    assert!(!contains(stored, b32.as_bytes()), "{what}: the stored value contains the base32 seed");
    assert!(stored.len() >= seed.len() + 12 + 16, "{what}: too short to be IV + ciphertext + tag");
}

async fn authorize(
    server: &TestServer,
    token: &str,
    credential: &str,
    otp: &str,
    tag: &str,
) -> (u16, serde_json::Value) {
    let hashes = digests(1, tag);
    server
        .post(
            "/csc/v1/credentials/authorize",
            Some(token),
            json!({"credentialID": credential, "numSignatures": 1, "hash": b64_all(&hashes), "OTP": otp}),
        )
        .await
}

#[tokio::test]
async fn totp_seeds_are_sealed_at_rest_and_bound_to_their_user() {
    let server = TestServer::start().await;
    let alice = server.provision("seal-alice", KeyKind::EcP256, 5, None).await;
    let bob = server.provision("seal-bob", KeyKind::EcP256, 5, None).await;

    // A person pairing through the portal: the pending seed is sealed before it is confirmed.
    let mut carol: Person = server.enrol("carol@example.com", "+38640111222").await;
    let (status, body) = server.post("/api/v1/totp/pairing", Some(&carol.token), json!({})).await;
    assert_eq!(status, 200, "pairing: {body}");
    let carol_seed = secrets::from_base32(body["secret"].as_str().unwrap()).unwrap();
    {
        let mut conn = server.services().db.get().unwrap();
        let (pending, seal): (Vec<u8>, String) = totp_pairings::table
            .filter(totp_pairings::user_id.eq(&carol.user_id))
            .select((totp_pairings::secret, totp_pairings::secret_seal))
            .first(&mut *conn)
            .unwrap();
        assert_not_the_seed(&pending, &carol_seed, "pending pairing");
        assert_eq!(seal, "hsm-aes-gcm-v1");
    }
    carol.totp_seed = Some(carol_seed.clone());
    let code = server.person_otp(&carol);
    let (status, body) = server.post("/api/v1/totp/pairing/confirm", Some(&carol.token), json!({"code": code})).await;
    assert_eq!(status, 200, "confirm pairing: {body}");

    for (user_id, seed, who) in [
        (&alice.user_id, &alice.totp_seed, "alice"),
        (&bob.user_id, &bob.totp_seed, "bob"),
        (&carol.user_id, &carol_seed, "carol"),
    ] {
        let (stored, seal) = stored_factor(&server, user_id);
        assert_not_the_seed(&stored, seed, who);
        assert_eq!(seal, "hsm-aes-gcm-v1", "{who}");
    }

    // Nor is any seed anywhere in the SQLite file or its write-ahead log.
    if std::env::var("RSSP_TEST_POSTGRES_URL").map(|v| v.is_empty()).unwrap_or(true) {
        for file in ["rssp.sqlite", "rssp.sqlite-wal"] {
            let bytes = std::fs::read(server.data_dir().join(file)).unwrap_or_default();
            for seed in [&alice.totp_seed, &bob.totp_seed, &carol_seed] {
                assert!(!contains(&bytes, seed), "a raw seed is in {file}");
                assert!(!contains(&bytes, secrets::base32(seed).as_bytes()), "a base32 seed is in {file}");
            }
        }
    }

    // Signing with a code from the seed still works.
    let alice_token = server.login("v1", &alice).await;
    let hashes = digests(1, "sealed-sign");
    let sad = server.authorize_v1(&alice_token, &alice, &hashes, 1).await;
    let (status, body) = server.sign_v1(&alice_token, &alice.credential_id, &sad, &hashes, ES256).await;
    assert_eq!(status, 200, "signHash: {body}");

    // A database writer copies Alice's sealed seed into Bob's row: it does not open for Bob, so Alice's
    // codes do not authorise Bob's signatures.
    let (alice_sealed, alice_seal) = stored_factor(&server, &alice.user_id);
    let (bob_sealed, bob_seal) = stored_factor(&server, &bob.user_id);
    set_factor(&server, &bob.user_id, &alice_sealed, &alice_seal);
    let bob_token = server.login("v1", &bob).await;
    let alice_code = server.next_otp(&alice);
    let (status, body) = authorize(&server, &bob_token, &bob.credential_id, &alice_code, "moved").await;
    assert_error(status, &body, 403, "access_denied", "reset the authenticator");
    let bob_code = server.next_otp(&bob);
    let (status, body) = authorize(&server, &bob_token, &bob.credential_id, &bob_code, "moved").await;
    assert_error(status, &body, 403, "access_denied", "reset the authenticator");

    // A seed put back in clear is not used either.
    set_factor(&server, &bob.user_id, &bob.totp_seed, "clear");
    let bob_code = server.next_otp(&bob);
    let (status, body) = authorize(&server, &bob_token, &bob.credential_id, &bob_code, "clear").await;
    assert_error(status, &body, 403, "access_denied", "reset the authenticator");

    // A clear seed next to sealed ones was written behind rssp's back (a database writer planting a
    // seed it knows): start does not seal it, so it never becomes a working factor.
    let services = server.server.as_ref().unwrap().services.clone();
    let sealed = tokio::task::spawn_blocking(move || {
        let mut conn = services.db.get().unwrap();
        rssp::service::totp_seal::seal_clear_seeds(&mut conn, &services.keystore).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(sealed, 0, "a planted clear seed is not sealed");
    let (_, seal) = stored_factor(&server, &bob.user_id);
    assert_eq!(seal, "clear");
    let bob_code = server.next_otp(&bob);
    let (status, body) = authorize(&server, &bob_token, &bob.credential_id, &bob_code, "planted").await;
    assert_error(status, &body, 403, "access_denied", "reset the authenticator");
    assert_ne!(bob_sealed, Vec::<u8>::new());
    assert_eq!(bob_seal, "hsm-aes-gcm-v1");

    // A flipped bit in the ciphertext does not open either.
    let mut altered = alice_sealed.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    set_factor(&server, &alice.user_id, &altered, &alice_seal);
    let code = server.next_otp(&alice);
    let (status, body) = authorize(&server, &alice_token, &alice.credential_id, &code, "flipped").await;
    assert_error(status, &body, 403, "access_denied", "reset the authenticator");
}

/// A session on the server's token, opened by the test like any other PKCS#11 application.
struct Token {
    _pkcs11: Pkcs11,
    session: Session,
}

fn open_token(label: &str, pin: &str) -> Token {
    let pkcs11 = Pkcs11::new(common::test_pkcs11().module()).unwrap();
    // The server in this process initialised the module already.
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("initialise: {e}"),
    }
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label().trim_end() == label)
        .expect("the server's token");
    let session = pkcs11.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    Token { _pkcs11: pkcs11, session }
}

fn label_of(session: &Session, handle: ObjectHandle) -> String {
    match session.get_attributes(handle, &[AttributeType::Label]).unwrap().pop() {
        Some(Attribute::Label(l)) => String::from_utf8(l).unwrap(),
        other => panic!("no label: {other:?}"),
    }
}

fn bool_attr(session: &Session, handle: ObjectHandle, attribute: AttributeType) -> bool {
    let value = session.get_attributes(handle, &[attribute]).unwrap().pop();
    match value {
        Some(
            Attribute::Decrypt(b)
            | Attribute::Unwrap(b)
            | Attribute::Modifiable(b)
            | Attribute::Copyable(b)
            | Attribute::Derive(b)
            | Attribute::Sign(b)
            | Attribute::Sensitive(b)
            | Attribute::Extractable(b)
            | Attribute::Encrypt(b)
            | Attribute::Wrap(b)
            | Attribute::Verify(b)
            | Attribute::Destroyable(b),
        ) => b,
        other => panic!("{attribute:?}: {other:?}"),
    }
}

fn find(session: &Session, class: ObjectClass, label: &str) -> ObjectHandle {
    let found = session.find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())]).unwrap();
    assert_eq!(found.len(), 1, "exactly one {class:?} labelled {label}");
    found[0]
}

/// A signing key signs with its own mechanisms and can do nothing else.
fn assert_signs_only(session: &Session, key: ObjectHandle, kind: KeyKind, what: &str) {
    for (attribute, want) in [
        (AttributeType::Sign, true),
        (AttributeType::Decrypt, false),
        (AttributeType::Unwrap, false),
        (AttributeType::Derive, false),
        (AttributeType::Modifiable, false),
        (AttributeType::Copyable, false),
        (AttributeType::Sensitive, true),
        (AttributeType::Extractable, false),
    ] {
        assert_eq!(bool_attr(session, key, attribute), want, "{what}: {attribute:?}");
    }
    let allowed = match session.get_attributes(key, &[AttributeType::AllowedMechanisms]).unwrap().pop() {
        Some(Attribute::AllowedMechanisms(m)) => m,
        other => panic!("{what}: no CKA_ALLOWED_MECHANISMS: {other:?}"),
    };
    let expected = if kind.is_rsa() {
        vec![MechanismType::RSA_PKCS, MechanismType::RSA_PKCS_PSS]
    } else {
        vec![MechanismType::ECDSA]
    };
    assert_eq!(allowed, expected, "{what}: allowed mechanisms");

    // Refused by the HSM: decrypting, changing an attribute, copying, signing with another mechanism.
    let ciphertext = vec![1u8; if kind.is_rsa() { kind.bits() as usize / 8 } else { 32 }];
    let decrypt_with = if kind.is_rsa() { Mechanism::RsaPkcs } else { Mechanism::Ecdsa };
    assert!(session.decrypt(&decrypt_with, key, &ciphertext).is_err(), "{what}: decrypts");
    assert!(session.update_attributes(key, &[Attribute::Decrypt(true)]).is_err(), "{what}: CKA_DECRYPT settable");
    assert!(session.update_attributes(key, &[Attribute::Label(b"renamed".to_vec())]).is_err(), "{what}: modifiable");
    assert!(session.copy_object(key, &[]).is_err(), "{what}: copyable");
    let (other, data) = if kind.is_rsa() {
        (Mechanism::Sha256RsaPkcs, b"whole message".to_vec())
    } else {
        (Mechanism::EcdsaSha256, b"whole message".to_vec())
    };
    assert!(session.sign(&other, key, &data).is_err(), "{what}: signs with a mechanism outside its list");
    let digest = sha256(b"a digest");
    let allowed_sign = if kind.is_rsa() {
        let mut info = rssp::domain::HashAlgorithm::Sha256.digest_info_prefix().to_vec();
        info.extend_from_slice(&digest);
        session.sign(&Mechanism::RsaPkcs, key, &info)
    } else {
        session.sign(&Mechanism::Ecdsa, key, &digest)
    };
    assert!(allowed_sign.is_ok(), "{what}: its own mechanism signs: {allowed_sign:?}");
}

#[tokio::test]
async fn signing_keys_sign_and_nothing_else_and_the_seal_key_stays_in_the_hsm() {
    let mut label = String::new();
    let server = TestServer::start_with(|c| label = c.hsm.token_label.clone()).await;
    let pin = server.services().config.hsm.pin.as_ref().unwrap().expose_secret().to_string();
    let rsa = server.provision("keys-rsa", KeyKind::Rsa2048, 1, None).await;
    let ec = server.provision("keys-ec", KeyKind::EcP256, 1, None).await;
    let token = open_token(&label, &pin);
    let session = &token.session;

    let mut subscriber_labels = Vec::new();
    for (signer, kind) in [(&rsa, KeyKind::Rsa2048), (&ec, KeyKind::EcP256)] {
        let key_label = format!("rssp-subscriber-{}", signer.credential_id);
        let key = find(session, ObjectClass::PRIVATE_KEY, &key_label);
        assert_signs_only(session, key, kind, &key_label);
        let public = find(session, ObjectClass::PUBLIC_KEY, &key_label);
        assert!(bool_attr(session, public, AttributeType::Verify), "public key verifies");
        assert!(!bool_attr(session, public, AttributeType::Encrypt), "public key encrypts");
        assert!(!bool_attr(session, public, AttributeType::Wrap), "public key wraps");
        subscriber_labels.push(key_label);
    }

    // The CA keys and the TSA key: their own labels, the same restrictions.
    let mut ca_labels = Vec::new();
    let tsa_kind = server.services().tsa.unit.kind;
    for (ca_label, kind) in [
        ("rssp-ca-root", rssp::pki::ca::CA_KEY_KIND),
        ("rssp-ca-issuing", rssp::pki::ca::CA_KEY_KIND),
        ("rssp-tsa", tsa_kind),
    ] {
        let key = find(session, ObjectClass::PRIVATE_KEY, ca_label);
        assert_signs_only(session, key, kind, ca_label);
        ca_labels.push(ca_label.to_string());
    }
    for handle in session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap() {
        let l = label_of(session, handle);
        assert!(
            l.starts_with("rssp-subscriber-") || l.starts_with("rssp-ca-") || l == "rssp-tsa" || l == "rssp-ocsp",
            "every private key is labelled as a subscriber, a CA, the TSA or the OCSP responder key: {l}"
        );
        assert!(!(ca_labels.contains(&l) && subscriber_labels.contains(&l)));
    }

    // The seal key: AES, sensitive, never extractable, encrypt/decrypt only; its value cannot be read.
    let seal = find(session, ObjectClass::SECRET_KEY, "rssp-totp-seal");
    for (attribute, want) in [
        (AttributeType::Sensitive, true),
        (AttributeType::Extractable, false),
        (AttributeType::Encrypt, true),
        (AttributeType::Decrypt, true),
        (AttributeType::Wrap, false),
        (AttributeType::Unwrap, false),
        (AttributeType::Sign, false),
        (AttributeType::Derive, false),
        (AttributeType::Modifiable, false),
        (AttributeType::Copyable, false),
    ] {
        assert_eq!(bool_attr(session, seal, attribute), want, "seal key: {attribute:?}");
    }
    let value = session.get_attributes(seal, &[AttributeType::Value]).unwrap();
    assert!(!value.iter().any(|a| matches!(a, Attribute::Value(_))), "the seal key's value is readable: {value:?}");
    assert!(session.copy_object(seal, &[Attribute::Extractable(true)]).is_err(), "the seal key can be copied");
    assert!(session.update_attributes(seal, &[Attribute::Extractable(true)]).is_err(), "the seal key can be changed");
    drop(token);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Starts `rssp serve` on a data directory (embedded SoftHSM and SQLite) and stops it once it listens.
fn serve_once(data_dir: &Path) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rssp"))
        .arg("serve")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("RSSP_CONFIG")
        .env("RSSP_DATA_DIR", data_dir)
        .env("RSSP_LISTEN", "127.0.0.1:0")
        .current_dir(data_dir.parent().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Kept to say why, should the server not start.
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("rssp listening on") {
                let _ = tx.send(());
            }
        }
    });
    let started = Instant::now();
    let listening = rx.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap_or_default();
    assert!(
        listening.is_ok(),
        "rssp serve did not start within {:?} ({status}); its stderr:\n{errors}",
        started.elapsed()
    );
}

fn assert_tree_private(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
            assert_tree_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[test]
fn serve_keeps_its_data_directory_private() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    serve_once(&data);
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("rssp.sqlite")), 0o600, "database file");
    assert_eq!(mode(&data.join("hsm")), 0o700, "HSM directory");
    assert_eq!(mode(&data.join("hsm/softhsm2.conf")), 0o600, "softhsm2.conf");
    // Everything else: the -wal/-shm files, the PINs, the token's files, the development secrets.
    assert_tree_private(&data);

    // An installation made before (group- and world-readable) is made private at the next start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["rssp.sqlite", "hsm/softhsm2.conf"] {
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    serve_once(&data);
    assert_eq!(mode(&data), 0o700, "data directory after restart");
    assert_tree_private(&data);
}

fn private_key_labels(session: &Session) -> Vec<String> {
    session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .into_iter()
        .map(|h| label_of(session, h))
        .collect()
}

#[tokio::test]
async fn ca_keys_can_live_on_a_token_of_their_own() {
    let (mut label, mut ca_label) = (String::new(), String::new());
    let server = TestServer::start_with(|c| {
        label = c.hsm.token_label.clone();
        ca_label = format!("{label}-ca");
        c.hsm.ca_token_label = Some(ca_label.clone());
    })
    .await;
    let pin = server.services().config.hsm.pin.as_ref().unwrap().expose_secret().to_string();
    // Issuance and CRLs are signed with the CA token's keys.
    let signer = server.provision("ca-apart", KeyKind::EcP256, 1, None).await;
    for crl in ["/pki/root-ca.crl", "/pki/issuing-ca.crl"] {
        let response = server.http.get(format!("{}{crl}", server.url)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{crl}");
    }

    let subscribers = open_token(&label, &pin);
    let labels = private_key_labels(&subscribers.session);
    assert!(labels.contains(&format!("rssp-subscriber-{}", signer.credential_id)), "{labels:?}");
    assert!(
        !labels.iter().any(|l| l.starts_with("rssp-ca-") || l == "rssp-tsa" || l == "rssp-ocsp"),
        "CA, TSA or OCSP keys on the subscribers' token: {labels:?}"
    );

    let ca = open_token(&ca_label, &pin);
    let mut labels = private_key_labels(&ca.session);
    labels.sort();
    assert_eq!(
        labels,
        ["rssp-ca-issuing", "rssp-ca-root", "rssp-ocsp", "rssp-tsa"],
        "only the CA, TSA and OCSP keys on the CA token"
    );
    let seal = ca.session.find_objects(&[Attribute::Label(b"rssp-totp-seal".to_vec())]).unwrap();
    assert!(seal.is_empty(), "the seal key stays with the subscribers' token");

    // Signing still works end to end.
    let token = server.login("v1", &signer).await;
    let hashes = digests(1, "ca-apart");
    let sad = server.authorize_v1(&token, &signer, &hashes, 1).await;
    let (status, body) = server.sign_v1(&token, &signer.credential_id, &sad, &hashes, ES256).await;
    assert_eq!(status, 200, "signHash: {body}");
}

/// A token that forgot the login (here: another part of the application calls C_Logout, which logs out
/// every session of the application on that token, as an HSM's idle timeout, restart or failover does):
/// the next signature logs in again instead of failing until the server restarts, and so does the TOTP
/// seal, which every authorisation opens (on Kryoptic, a logged-out seal key once read as a broken seal).
#[tokio::test]
async fn a_token_that_forgot_the_login_is_logged_in_again() {
    let mut label = String::new();
    let server = TestServer::start_with(|c| label = c.hsm.token_label.clone()).await;
    let pin = server.services().config.hsm.pin.as_ref().unwrap().expose_secret().to_string();
    let signer = server.provision("relogin", KeyKind::EcP256, 2, None).await;
    let token = server.login("v1", &signer).await;
    let key_label = format!("rssp-subscriber-{}", signer.credential_id);

    for round in ["first", "second"] {
        let other = open_token(&label, &pin);
        other.session.logout().unwrap();
        // Logged out for the whole application: private objects are invisible to every session now.
        let private = other.session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap();
        assert!(private.is_empty(), "{round}: still logged in after C_Logout: {} private keys", private.len());

        let hashes = digests(1, round);
        let sad = server.authorize_v1(&token, &signer, &hashes, 1).await;
        let (status, body) = server.sign_v1(&token, &signer.credential_id, &sad, &hashes, "1.2.840.10045.4.3.2").await;
        assert_eq!(status, 200, "{round}: signHash after the token forgot the login: {body}");
        // rssp logged in again: the key is visible to the application's sessions once more.
        let found = other.session.find_objects(&[Attribute::Label(key_label.as_bytes().to_vec())]).unwrap();
        assert!(!found.is_empty(), "{round}: rssp did not log in again");
    }
}

/// A token that refuses the PIN when rssp logs in again (here the user PIN was changed behind rssp's back,
/// then the token forgot the login): rssp tries once and stops, since every further try would count
/// against the token's PIN retries and could lock the HSM user out for every node. Requests that need the
/// HSM fail with a clear 503, /readyz says why, and no further C_Login is made.
#[tokio::test]
async fn a_refused_pin_is_tried_once_and_then_the_hsm_is_reported_unavailable() {
    let mut label = String::new();
    let server = TestServer::start_with(|c| label = c.hsm.token_label.clone()).await;
    let pin = server.services().config.hsm.pin.as_ref().unwrap().expose_secret().to_string();
    let signer = server.provision("pin-changed", KeyKind::EcP256, 3, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(1, "pin-changed");
    let sad = server.authorize_v1(&token, &signer, &hashes, 1).await;
    let (status, body) = server.sign_v1(&token, &signer.credential_id, &sad, &hashes, ES256).await;
    assert_eq!(status, 200, "signHash with the login intact: {body}");
    // Authorised while the HSM still opens the TOTP seal; a signature that fails in the HSM is refunded,
    // so this SAD serves every try below.
    let hashes = digests(1, "pin-changed later");
    let sad = server.authorize_v1(&token, &signer, &hashes, 1).await;
    assert_eq!(server.get("/readyz", None).await.0, 200);
    let keystore = &server.services().keystore;
    assert_eq!(keystore.relogin_attempts(), 0, "no login since the start");

    // Another application of the process changes the user PIN, then logs out: the token forgets the login.
    let other = open_token(&label, &pin);
    let new_pin = format!("{pin}-changed");
    other.session.set_pin(&AuthPin::new(pin.clone().into()), &AuthPin::new(new_pin.clone().into())).unwrap();
    other.session.logout().unwrap();
    let private = other.session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap();
    assert!(private.is_empty(), "still logged in after C_Logout: {} private keys", private.len());

    for round in ["first", "second", "third"] {
        let (status, body) = server.sign_v1(&token, &signer.credential_id, &sad, &hashes, ES256).await;
        assert_error(status, &body, 503, "temporarily_unavailable", "HSM is unavailable");
        assert_eq!(keystore.relogin_attempts(), 1, "{round}: one login with the refused PIN, and no other");
    }
    // A readiness result is reused for a second: ask until the new one shows.
    let mut answer = server.get("/readyz", None).await;
    for _ in 0..20 {
        if answer.0 != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        answer = server.get("/readyz", None).await;
    }
    let (status, body) = answer;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["hsm"], "login refused", "{body}");
    assert_eq!(keystore.relogin_attempts(), 1, "the readiness check does not log in");

    // The token itself is still willing: the new PIN logs in, so rssp spent one try and no more.
    other.session.login(UserType::User, Some(&AuthPin::new(new_pin.into()))).unwrap();
    let found = other.session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap();
    assert!(!found.is_empty(), "logged in with the new PIN");
    // rssp stays refused until it restarts, even with the token logged in again by someone else.
    let (status, body) = server.sign_v1(&token, &signer.credential_id, &sad, &hashes, ES256).await;
    assert_error(status, &body, 503, "temporarily_unavailable", "HSM is unavailable");
    assert_eq!(keystore.relogin_attempts(), 1);
    other.session.logout().unwrap();
}
