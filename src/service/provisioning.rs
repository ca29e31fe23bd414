//! Creating a ready signer in one step (the operator's `rssp provision-user`): the user, the TOTP
//! factor, a key pair in the HSM and a qualified certificate from our CA.

use secrecy::{ExposeSecret, SecretString};

use crate::audit::{self, AuditEvent, Outcome};
use crate::db::{self, accounts, authenticators, credentials::CredentialRow};
use crate::domain::{enrolment, secrets, totp, AuditEventName, CredentialId, KeyKind, UserId};
use crate::domain::{AccountStatus, CredentialStatus};
use crate::pki::ca::{person_name, provider_serial_number, PersonSubject};

use super::auth::hash_password;
use super::{totp_seal, Field, ServiceError, Services};

/// A signer to create with `rssp provision-user` (or in tests).
#[derive(Debug, Clone)]
pub struct NewSigner {
    /// The login name: 1 to 64 of A-Z a-z 0-9 . _ - @.
    pub username: String,
    /// The password, under the lifecycle API's policy.
    pub password: SecretString,
    /// The kind of the signing key.
    pub key_kind: KeyKind,
    /// Most signatures one SAD may cover.
    pub multisign: i32,
    /// Optional signing PIN, asked for on every authorisation besides the one-time code.
    pub pin: Option<SecretString>,
    /// Signatures the credential may make in all (None: no limit).
    pub quota: Option<i32>,
    /// Given name and surname for the certificate subject; without them its commonName is the username.
    pub names: Option<(String, String)>,
    /// ISO 3166-1 alpha-2 country of the person; None: `ca.default_subject_country`.
    pub country: Option<String>,
}

/// The signer created, printed as JSON by `rssp provision-user`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProvisionedSigner {
    /// The new user's id.
    pub user_id: UserId,
    /// The login name.
    pub username: String,
    /// The CSC `credentialID` of the signing credential.
    pub credential_id: CredentialId,
    /// The TOTP seed, base32, for an authenticator app.
    pub totp_secret: String,
    pub(crate) totp_uri: String,
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

/// Creates a ready signer: user, paired TOTP authenticator, key pair in the HSM, certificate.
pub fn provision(services: &Services, signer: NewSigner) -> Result<ProvisionedSigner, ServiceError> {
    if !valid_username(&signer.username) {
        return Err(ServiceError::invalid_field(Field::Username, "1 to 64 of A-Z a-z 0-9 . _ - @"));
    }
    // The lifecycle API's policy; the username stands in for the e-mail name it must not contain.
    enrolment::check_password(signer.password.expose_secret(), Some(&signer.username))
        .map_err(|why| ServiceError::invalid_field(Field::Password, why))?;
    if !(1..=1_000_000).contains(&signer.multisign) {
        return Err(ServiceError::invalid_field(Field::Multisign, "between 1 and 1000000"));
    }
    if signer.quota.is_some_and(|q| q < 1) {
        return Err(ServiceError::invalid_field(Field::Quota, "at least 1"));
    }
    let pin = signer.pin.as_ref().map(ExposeSecret::expose_secret);
    if pin.is_some_and(|p| p.len() < 4 || !p.chars().all(|c| c.is_ascii_digit())) {
        return Err(ServiceError::invalid_field(Field::Pin, "at least 4 digits"));
    }
    let names = match &signer.names {
        Some((given_name, surname)) => Some((
            enrolment::parse_name(given_name).map_err(|why| ServiceError::invalid_field(Field::GivenName, why))?,
            enrolment::parse_name(surname).map_err(|why| ServiceError::invalid_field(Field::Surname, why))?,
        )),
        None => None,
    };
    let country = signer
        .country
        .as_deref()
        .map(enrolment::parse_country)
        .transpose()
        .map_err(|why| ServiceError::invalid_field(Field::Country, why))?;
    let now = services.now();
    let mut conn = services.conn()?;
    if accounts::by_username(&mut conn, &signer.username)?.is_some() {
        return Err(ServiceError::InvalidRequest(format!("user {:?} already exists", signer.username)));
    }
    let user_id = uuid::Uuid::new_v4().to_string();
    let credential_id = uuid::Uuid::new_v4().to_string();
    let password_hash = hash_password(signer.password.expose_secret())?;
    let pin_hash = pin.map(hash_password).transpose()?;
    let seed = zeroize::Zeroizing::new(secrets::new_totp_seed());
    let sealed = totp_seal::seal(&services.keystore, &user_id, &seed)?;

    let key = services.keystore.generate(signer.key_kind, &credential_id)?;
    let subject = person_name(&PersonSubject {
        names: names.clone(),
        fallback_common_name: signer.username.clone(),
        serial_number: provider_serial_number(&user_id),
        country: country.clone().unwrap_or_else(|| services.config.default_subject_country().to_string()),
    })?;
    let issued = services.ca.issue_end_entity(
        services.ca_keys(),
        &key.public_key_der,
        subject,
        &services.public_url,
        now,
        services.config.ca.end_entity_validity_days,
    )?;

    db::write_transaction(&mut conn, |c| {
        // One row with everything an operator-provisioned signer has: no e-mail, no phone, active.
        let (given_name, surname) = names.clone().unzip();
        accounts::insert(
            c,
            &accounts::Account {
                id: user_id.clone(),
                username: signer.username.clone(),
                password_hash,
                created_at: now,
                given_name,
                surname,
                email: None,
                phone: None,
                status: AccountStatus::Active,
                login_failures: 0,
                login_locked_until: None,
                totp_postpone: None,
                totp_remind_at: None,
                country: country.clone(),
            },
        )?;
        authenticators::insert_totp(
            c,
            &authenticators::TotpFactor {
                user_id: user_id.clone(),
                secret: sealed.secret,
                last_step: None,
                failures: 0,
                locked_until: None,
                secret_seal: sealed.seal,
            },
        )?;
        db::credentials::insert(
            c,
            &CredentialRow {
                id: credential_id.clone(),
                user_id: user_id.clone(),
                key_kind: signer.key_kind.to_string(),
                key_id: key.id.to_hex(),
                certificate: issued.der.clone(),
                serial_hex: issued.serial_hex.clone(),
                not_after: issued.not_after,
                pin_hash,
                multisign: signer.multisign,
                status: CredentialStatus::Enabled,
                revoked_at: None,
                created_at: now,
                quota_total: signer.quota,
                quota_used: 0,
                order_id: None,
                replaced_by: None,
                revocation_reason: None,
                revocation_code: None,
            },
        )?;
        audit::record(
            c,
            now,
            AuditEvent {
                event: AuditEventName::CredentialIssued,
                outcome: Outcome::Success,
                user_id: Some(&user_id),
                credential_id: Some(&credential_id),
                detail: format!("provisioned by operator: key {} serial {}", signer.key_kind, issued.serial_hex),
            },
        )
        .map_err(ServiceError::from)
    })?;
    let totp_secret = secrets::base32(&seed);
    let totp_uri = totp::otpauth_uri(&services.config.service_name, &signer.username, &totp_secret);
    Ok(ProvisionedSigner {
        user_id: user_id.into(),
        username: signer.username,
        credential_id: credential_id.into(),
        totp_secret,
        totp_uri,
    })
}
