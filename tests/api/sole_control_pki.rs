//! Issue 7, items 10 and 14: the CA signs only when something changed or on schedule (CRLs are stored and
//! served from storage, numbered by the database), end-entity certificates never outlive their issuing CA,
//! and a person's certificate names them the way ETSI EN 319 412-2 asks (givenName, surname,
//! serialNumber, countryName), with the QcSSCD statement only where the key really is in a QSCD.

use crate::common;

use crate::common::pki::{
    crl_facts, extension_value, normal_serial, not_after, oid_der, openssl_subject, subject_attribute, CrlFacts,
};
use crate::common::{assert_error, TestServer};
use rssp::service::ca::{self, CrlIssuer};
use serde_json::json;

const ISSUING_CRL: &str = "/pki/issuing-ca.crl";
const ROOT_CRL: &str = "/pki/root-ca.crl";
const QC_STATEMENTS: &str = "1.3.6.1.5.5.7.1.3";
const QC_COMPLIANCE: &str = "0.4.0.1862.1.1";
const QC_SSCD: &str = "0.4.0.1862.1.4";

/// The background scheduler stays out of the way: the tests run the jobs themselves.
async fn server(adjust: impl FnOnce(&mut rssp::config::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.lifecycle.scheduler_interval_secs = 24 * 3600;
        adjust(c);
    })
    .await
}

fn stored_numbers(ts: &TestServer, issuer: CrlIssuer) -> Vec<i64> {
    let mut conn = ts.services().db.get().unwrap();
    rssp::db::crls::numbers(&mut conn, issuer.ca_name()).unwrap()
}

async fn run_jobs(ts: &TestServer) -> serde_json::Value {
    let (status, body) = ts.post("/api/admin/v1/scheduler/run", Some(&ts.operator_key()), json!({})).await;
    assert_eq!(status, 200, "scheduler: {body}");
    body
}

/// `openssl crl -verify` of a CRL against its CA's certificate.
fn openssl_verifies(ts: &TestServer, crl: &[u8], ca_der: &[u8]) {
    let dir = ts.data_dir();
    let crl_path = dir.join(format!("v-{}.crl", hex::encode(rssp::domain::secrets::random_bytes::<4>())));
    let ca_path = dir.join("ca-for-crl.der");
    std::fs::write(&crl_path, crl).unwrap();
    std::fs::write(&ca_path, ca_der).unwrap();
    let ca_pem = dir.join("ca-for-crl.pem");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(&ca_path)
        .arg("-out")
        .arg(&ca_pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&crl_path)
        .arg("-CAfile")
        .arg(&ca_pem)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("verify OK"), "openssl crl -verify: {text}");
}

#[tokio::test]
async fn crls_are_served_from_storage_and_their_numbers_only_grow() {
    let ts = server(|_| {}).await;
    // Fifty anonymous GETs of each CRL: one stored CRL each, served byte for byte; nothing is signed.
    let first_issuing = ts.get_der(ISSUING_CRL).await;
    let first_root = ts.get_der(ROOT_CRL).await;
    for _ in 0..50 {
        assert_eq!(ts.get_der(ISSUING_CRL).await, first_issuing, "the issuing CRL is not signed again per request");
        assert_eq!(ts.get_der(ROOT_CRL).await, first_root, "the root CRL is not signed again per request");
    }
    assert_eq!(stored_numbers(&ts, CrlIssuer::Issuing), vec![1]);
    assert_eq!(stored_numbers(&ts, CrlIssuer::Root), vec![1]);
    let before = crl_facts(&first_issuing);
    assert_eq!(before.number, 1);
    assert!(before.serials.is_empty());
    openssl_verifies(&ts, &first_issuing, &ts.services().ca.issuing.certificate_der);
    openssl_verifies(&ts, &first_root, &ts.services().ca.root.certificate_der);

    // A revocation publishes a new CRL at once: a higher number, listing the serial.
    let (person, credential) = ts.certified_person("crl@example.org", "+38641100001").await;
    let credential_id = credential["credential_id"].as_str().unwrap();
    let (status, body) = ts
        .post(
            &format!("/api/v1/credentials/{credential_id}/revoke"),
            Some(&person.token),
            json!({"otp": ts.person_otp(&person), "reason": "key compromise"}),
        )
        .await;
    assert_eq!(status, 200, "revoke: {body}");
    let serial = normal_serial(body["serial"].as_str().unwrap());
    let after_der = ts.get_der(ISSUING_CRL).await;
    let after = crl_facts(&after_der);
    assert!(after.number > before.number, "CRL number {} after {}", after.number, before.number);
    assert_eq!(after.serials, vec![serial]);
    openssl_verifies(&ts, &after_der, &ts.services().ca.issuing.certificate_der);
    // The root CRL is not touched by an end-entity revocation.
    assert_eq!(ts.get_der(ROOT_CRL).await, first_root);
    assert_eq!(stored_numbers(&ts, CrlIssuer::Root), vec![1]);

    // Two CRLs made within one second still get different, growing numbers (they used to be the time).
    let services = ts.server.as_ref().unwrap().services.clone();
    let (a, b) = tokio::task::spawn_blocking(move || {
        for _ in 0..5 {
            let a = ca::publish_crl(&services, CrlIssuer::Issuing).unwrap();
            let b = ca::publish_crl(&services, CrlIssuer::Issuing).unwrap();
            if a.this_update == b.this_update {
                return (a, b);
            }
        }
        panic!("no two CRLs within one second");
    })
    .await
    .unwrap();
    assert!(b.number > a.number, "numbers {} then {} in the same second", a.number, b.number);
    let served = ts.get_der(ISSUING_CRL).await;
    assert_eq!(served, b.der, "the newest CRL is served");
    let numbers = stored_numbers(&ts, CrlIssuer::Issuing);
    let mut unique = numbers.clone();
    unique.dedup();
    assert_eq!(numbers, unique, "no CRL number is used twice: {numbers:?}");
    assert_eq!(crl_facts(&served).number as i64, *numbers.last().unwrap());
}

#[tokio::test]
async fn the_scheduler_publishes_new_crls_before_next_update() {
    let ts = server(|_| {}).await;
    let issuing = crl_facts(&ts.get_der(ISSUING_CRL).await);
    let root = crl_facts(&ts.get_der(ROOT_CRL).await);
    let refresh_before = ts.services().config.ca.crl_refresh_before_secs;

    // Well before the refresh point the jobs publish nothing.
    assert_eq!(run_jobs(&ts).await["crls_published"], 0);
    assert_eq!(crl_facts(&ts.get_der(ISSUING_CRL).await).number, issuing.number);

    // Past the refresh point (still before nextUpdate) both CAs publish a newer CRL.
    ts.clock.advance(issuing.next_update - refresh_before - ts.now() + 1);
    assert!(ts.now() < issuing.next_update);
    assert_eq!(run_jobs(&ts).await["crls_published"], 2);
    let check = |old: &CrlFacts, new: &CrlFacts| {
        assert!(new.number > old.number, "number {} after {}", new.number, old.number);
        assert!(new.next_update > old.next_update, "nextUpdate {} after {}", new.next_update, old.next_update);
        assert!(new.this_update >= old.next_update - refresh_before);
    };
    let new_issuing_der = ts.get_der(ISSUING_CRL).await;
    let new_root_der = ts.get_der(ROOT_CRL).await;
    check(&issuing, &crl_facts(&new_issuing_der));
    check(&root, &crl_facts(&new_root_der));
    openssl_verifies(&ts, &new_issuing_der, &ts.services().ca.issuing.certificate_der);
    openssl_verifies(&ts, &new_root_der, &ts.services().ca.root.certificate_der);
    // And then nothing again until the next refresh point.
    assert_eq!(run_jobs(&ts).await["crls_published"], 0);

    // A revocation whose CRL was never published (the node stopped right after the commit) is caught by
    // the next run: the issuing CRL is published again, listing it; the root CRL is left alone.
    let signer = ts.provision("stopped-node", rssp::domain::KeyKind::EcP256, 1, None).await;
    let serial = {
        let mut conn = ts.services().db.get().unwrap();
        assert!(rssp::db::credentials::revoke(&mut conn, &signer.credential_id, "test", None, ts.now()).unwrap());
        rssp::db::credentials::by_id(&mut conn, &signer.credential_id).unwrap().unwrap().serial_hex
    };
    let before = crl_facts(&ts.get_der(ISSUING_CRL).await);
    assert!(before.serials.is_empty());
    assert_eq!(run_jobs(&ts).await["crls_published"], 1);
    let after = crl_facts(&ts.get_der(ISSUING_CRL).await);
    assert!(after.number > before.number);
    assert_eq!(after.serials, vec![normal_serial(&serial)]);
    assert_eq!(crl_facts(&ts.get_der(ROOT_CRL).await).number, crl_facts(&new_root_der).number);
}

#[tokio::test]
async fn end_entity_certificates_never_outlive_the_issuing_ca() {
    // Thirty years asked for, by the operator's setting and by a package; the issuing CA lives ten.
    let ts = server(|c| {
        c.ca.end_entity_validity_days = 30 * 365;
        for package in &mut c.lifecycle.packages {
            package.validity_years = 30;
        }
    })
    .await;
    let ca_not_after = not_after(&ts.get_der("/pki/issuing-ca.cer").await);
    assert!(ca_not_after < ts.now() + 11 * 365 * 86_400);

    let signer = ts.provision("long-lived", rssp::domain::KeyKind::EcP256, 1, None).await;
    let provisioned = not_after(&ts.credential_certificate(&signer.credential_id));
    assert!(provisioned <= ca_not_after, "provisioned notAfter {provisioned} > CA {ca_not_after}");

    let (_, credential) = ts.certified_person("long@example.org", "+38641100002").await;
    let issued = not_after(&ts.credential_certificate(credential["credential_id"].as_str().unwrap()));
    assert!(issued <= ca_not_after, "issued notAfter {issued} > CA {ca_not_after}");
}

#[tokio::test]
async fn a_persons_certificate_names_them_and_claims_no_qscd_on_softhsm() {
    let ts = server(|c| c.ca.default_subject_country = Some("AT".into())).await;

    // The country is checked at registration: a clear 400, and no account is made.
    for bad in ["XX", "si", "SVN", ""] {
        let (status, body) = ts
            .post(
                "/api/v1/registrations",
                None,
                json!({"given_name": "Ana", "surname": "Novak", "email": "bad-country@example.org",
                       "phone": "+38641100009", "country": bad,
                       "privacy_consent": {"accepted": true, "version": "2026-01"}}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_request", "country");
    }

    // A person who named a country gets it; givenName, surname and rssp's identifier of the person too.
    let mut person = ts.enrol_with_country("hr@example.org", "+38641100003", "HR").await;
    let (status, profile) = ts.get("/api/v1/me", Some(&person.token)).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["country"], "HR");
    ts.pair(&mut person).await;
    let order = ts.buy(&person, "issuance", None).await;
    ts.accept_identity(&person, &order).await;
    let credential = ts.issue(&person, &order).await;
    let der = ts.credential_certificate(credential["credential_id"].as_str().unwrap());
    let subject = openssl_subject(ts.data_dir(), &der);
    assert_eq!(subject_attribute(&subject, "givenName").as_deref(), Some("Ana"), "{subject}");
    assert_eq!(subject_attribute(&subject, "surname").as_deref(), Some("Novak"), "{subject}");
    assert_eq!(subject_attribute(&subject, "countryName").as_deref(), Some("HR"), "{subject}");
    assert_eq!(subject_attribute(&subject, "commonName").as_deref(), Some("Ana Novak"), "{subject}");
    let serial_number = subject_attribute(&subject, "serialNumber").expect("serialNumber");
    assert_eq!(serial_number, format!("RSSP-{}", person.user_id.to_uppercase()));

    // Without a country of their own, the configured default.
    let (other, credential) = ts.certified_person("default@example.org", "+38641100004").await;
    let subject =
        openssl_subject(ts.data_dir(), &ts.credential_certificate(credential["credential_id"].as_str().unwrap()));
    assert_eq!(subject_attribute(&subject, "countryName").as_deref(), Some("AT"), "{subject}");
    assert_eq!(
        subject_attribute(&subject, "serialNumber"),
        Some(format!("RSSP-{}", other.user_id.to_uppercase())),
        "{subject}"
    );

    // SoftHSM is no QSCD: the certificate is qualified (QcCompliance) but claims no QcSSCD.
    let statements = extension_value(&der, QC_STATEMENTS).expect("QC statements");
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    assert!(contains(&statements, &oid_der(QC_COMPLIANCE)));
    assert!(!contains(&statements, &oid_der(QC_SSCD)), "no QcSSCD on SoftHSM");
}

#[tokio::test]
async fn the_qscd_claim_is_made_only_when_configured() {
    let ts = server(|c| c.ca.qc_sscd = Some(true)).await;
    let services = ts.server.as_ref().unwrap().services.clone();
    let signer = tokio::task::spawn_blocking(move || {
        rssp::service::provisioning::provision(
            &services,
            rssp::service::provisioning::NewSigner {
                username: "qscd-user".into(),
                password: common::PASSWORD.into(),
                key_kind: rssp::domain::KeyKind::EcP256,
                multisign: 1,
                pin: None,
                quota: None,
                names: Some(("Marko".into(), "Kranjc".into())),
                country: Some("SI".into()),
            },
        )
    })
    .await
    .unwrap()
    .unwrap();
    let der = ts.credential_certificate(&signer.credential_id);
    let statements = extension_value(&der, QC_STATEMENTS).expect("QC statements");
    assert!(statements.windows(oid_der(QC_SSCD).len()).any(|w| w == oid_der(QC_SSCD).as_slice()), "QcSSCD");
    let subject = openssl_subject(ts.data_dir(), &der);
    assert_eq!(subject_attribute(&subject, "givenName").as_deref(), Some("Marko"), "{subject}");
    assert_eq!(subject_attribute(&subject, "surname").as_deref(), Some("Kranjc"), "{subject}");
    assert_eq!(subject_attribute(&subject, "countryName").as_deref(), Some("SI"), "{subject}");
    assert_eq!(subject_attribute(&subject, "serialNumber"), Some(format!("RSSP-{}", signer.user_id.to_uppercase())));
}
