//! The states and names the service stores as text: order status and purpose, identity-check status
//! and kind, certificate and credential status, TOTP postponement, verification purposes, outbox
//! status and channel, account status, CA names. Each is an enum whose `as_str` is exactly the text
//! in the database and on the wire; parsing any other text is an error that names it.

use std::fmt;
use std::str::FromStr;

/// Text that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?}")]
pub struct UnknownValue {
    /// What was parsed ("order status", ...).
    pub what: &'static str,
    /// The text that matched no value.
    pub text: String,
}

/// Defines an enum stored and sent as text: `as_str`, `FromStr`, `Display`, serde and OpenAPI with
/// the same text, and diesel `Text` expressions (the `FromSql`/`ToSql` impls live in `db`). The
/// OpenAPI schema is written here rather than derived: utoipa's derive does not see a `rename` whose
/// text comes from a macro fragment, and would list the variant names instead. `ToSchema` (the
/// schema's name) is implemented below, outside the macro, where `tests/api/openapi_truth.rs` sees it.
macro_rules! text_enum {
    (
        $(#[doc = $doc:literal])*
        $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
            diesel::AsExpression, diesel::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownValue { what: $what, text: text.to_string() }),
                }
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc = [$($doc),*].iter().map(|line: &&str| line.trim()).collect::<Vec<_>>().join("\n");
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(doc))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where an order stands, from creation to fulfilment.
    OrderStatus("order status") {
        /// Created; the invoice data may still change.
        Created = "created",
        /// The invoice is issued and the payment page is open.
        AwaitingPayment = "awaiting_payment",
        /// Paid; waiting for the identity check or the rekey submission.
        Paid = "paid",
        /// A rekey submitted with a TOTP code, waiting for the identity decision (operator or provider).
        AwaitingDecision = "awaiting_decision",
        /// Reserved by one issuance that is generating the key and certificate now: any other
        /// issuance of the order is refused until it is fulfilled or released.
        Issuing = "issuing",
        /// The certificate was issued.
        Fulfilled = "fulfilled",
        /// Paid but can no longer be fulfilled (the certificate to rekey expired): to be refunded.
        RefundDue = "refund_due",
    }
}

text_enum! {
    /// Why a package is bought.
    Purpose("order purpose") {
        /// The first certificate.
        Issuance = "issuance",
        /// A new key and certificate before the current one expires.
        Rekey = "rekey",
        /// A new certificate after the last one expired or was revoked (new identity check).
        Reissue = "reissue",
    }
}

text_enum! {
    /// Where an identity check stands.
    CheckStatus("identity check status") {
        /// Waiting for the provider's or an operator's decision.
        Pending = "pending",
        /// The identity was confirmed.
        Accepted = "accepted",
        /// The identity was not confirmed; a new check may follow.
        Rejected = "rejected",
    }
}

text_enum! {
    /// What an identity check decides on.
    CheckKind("identity check kind") {
        /// A check of the person's identity before an issuance or reissue (video identification).
        Identity = "identity",
        /// A submitted rekey: its names and identity document, waiting for a decision.
        Rekey = "rekey",
    }
}

text_enum! {
    /// The state of a certificate at a moment, computed from its dates and revocation.
    CertificateStatus("certificate status") {
        /// Within its validity period and not revoked.
        Valid = "valid",
        /// Past its `notAfter`.
        Expired = "expired",
        /// Revoked.
        Revoked = "revoked",
    }
}

text_enum! {
    /// Whether a credential's key may be used (CSC `key/status`).
    CredentialStatus("credential status") {
        /// The key may sign.
        Enabled = "enabled",
        /// The key is disabled (its certificate was revoked).
        Disabled = "disabled",
    }
}

text_enum! {
    /// How a person postponed pairing an authenticator app.
    TotpPostponement("TOTP postponement") {
        /// Not asked again.
        Never = "never",
        /// Asked again at the next login.
        NextLogin = "next_login",
        /// Asked again after a date.
        Until = "until",
    }
}

text_enum! {
    /// What a one-time link or code is for.
    VerificationPurpose("verification purpose") {
        /// The account activation link.
        ActivationLink = "activation",
        /// The SMS code that goes with the activation link.
        ActivationSms = "activation_sms",
        /// The password reset link.
        ResetLink = "password_reset",
        /// The SMS code that goes with the password reset link.
        ResetSms = "password_reset_sms",
        /// The e-mail link confirming a phone number change.
        PhoneEmail = "phone_change_email",
        /// The SMS code sent to the new phone number.
        PhoneSms = "phone_change_sms",
        /// The SMS code confirming an authenticator reset.
        TotpResetSms = "totp_reset_sms",
        /// The e-mail link cancelling an authenticator reset.
        TotpResetCancelLink = "totp_reset_cancel",
    }
}

text_enum! {
    /// Where an outbox message stands.
    OutboxStatus("outbox status") {
        /// Waiting for delivery.
        Pending = "pending",
        /// Development mode: kept in the outbox, never delivered.
        Held = "held",
        /// Claimed by a delivery worker.
        Sending = "sending",
        /// Delivered.
        Sent = "sent",
        /// Given up after the last attempt.
        Failed = "failed",
    }
}

text_enum! {
    /// How a message reaches a person.
    Channel("notification channel") {
        /// By e-mail (SMTP).
        Email = "email",
        /// By SMS (the HTTP gateway).
        Sms = "sms",
    }
}

text_enum! {
    /// Whether an account may log in.
    AccountStatus("account status") {
        /// Registered, not activated yet.
        Invited = "invited",
        /// Activated.
        Active = "active",
    }
}

text_enum! {
    /// The CA keys rssp keeps.
    CaName("CA name") {
        /// The root CA.
        Root = "root",
        /// The issuing CA that signs subscriber certificates.
        Issuing = "issuing",
    }
}

text_enum! {
    /// The keys of the trust services other than the CA, each with a certificate from the issuing CA.
    TrustServiceName("trust service") {
        /// The time-stamping unit of the TSA (RFC 3161).
        Tsa = "tsa",
        /// The delegated OCSP responder (RFC 6960).
        Ocsp = "ocsp",
    }
}

text_enum! {
    /// Why a certificate was revoked: the CRL reasons (RFC 5280 §5.3.1) that apply to a person's signing
    /// certificate. Unspecified is no value: the reason is then left out of the CRL entry and OCSP answer.
    RevocationReason("revocation reason") {
        /// The private key is, or may be, known to someone else.
        KeyCompromise = "key_compromise",
        /// The person's name or other certified data changed.
        AffiliationChanged = "affiliation_changed",
        /// Replaced by another certificate.
        Superseded = "superseded",
        /// No longer needed.
        CessationOfOperation = "cessation_of_operation",
        /// The trust service withdrew it (an operator's decision).
        PrivilegeWithdrawn = "privilege_withdrawn",
    }
}

text_enum! {
    /// What an API key may be used for.
    ApiKeyRole("API key role") {
        /// An operator: the admin API (`/api/admin/v1`).
        Admin = "admin",
        /// A relying party's time-stamping tool: `POST /tsa` (when `tsa.access = bearer`) and nothing else.
        TsaClient = "tsa_client",
    }
}

text_enum! {
    /// Whether an OAuth2 client can keep a secret (RFC 6749 §2.1).
    ClientType("OAuth2 client type") {
        /// A native or in-browser application, which cannot keep a secret: it identifies itself by its
        /// `client_id` alone and must use PKCE.
        Public = "public",
        /// A server-side application that authenticates with its secret.
        Confidential = "confidential",
    }
}

text_enum! {
    /// Where a document signing session stands.
    SigningSessionState("signing session state") {
        /// Created; waiting for the person's code.
        Ready = "ready",
        /// One sign request holds it now (no other may sign it until that one ends).
        Signing = "signing",
        /// Signed: the signed files can be downloaded until the session expires.
        Signed = "signed",
    }
}

text_enum! {
    /// What a signing session makes of a file.
    SignedOutput("signed output") {
        /// A PDF signed inside (PAdES), under its own name.
        Pdf = "pdf",
        /// A detached CAdES signature beside the file, named after it with `.p7s` added.
        P7s = "p7s",
    }
}

text_enum! {
    /// Who asked for a time-stamp.
    TimeStampRequester("time-stamp requester") {
        /// Anyone, through `POST /tsa` when `tsa.access` is `open`.
        Anonymous = "anonymous",
        /// A TSA client, through `POST /tsa` with its API key (`rssp tsa-client create`).
        Client = "client",
        /// A person, through CSC `signatures/timestamp`: it spent a transaction of their credential.
        Person = "person",
    }
}

text_enum! {
    /// The security events of the audit trail; the text is what a record's `event` holds.
    AuditEventName("audit event") {
        /// `account.activate`.
        AccountActivate = "account.activate",
        /// `account.activation_code`.
        AccountActivationCode = "account.activation_code",
        /// `account.consent`.
        AccountConsent = "account.consent",
        /// `account.login`.
        AccountLogin = "account.login",
        /// `account.logout`.
        AccountLogout = "account.logout",
        /// `account.password_change`.
        AccountPasswordChange = "account.password_change",
        /// `account.password_reset`.
        AccountPasswordReset = "account.password_reset",
        /// `account.password_reset_code`.
        AccountPasswordResetCode = "account.password_reset_code",
        /// `account.password_reset_complete`.
        AccountPasswordResetComplete = "account.password_reset_complete",
        /// `account.phone_change`.
        AccountPhoneChange = "account.phone_change",
        /// `account.phone_change_confirm`.
        AccountPhoneChangeConfirm = "account.phone_change_confirm",
        /// `account.phone_change_email`.
        AccountPhoneChangeEmail = "account.phone_change_email",
        /// `account.register`.
        AccountRegister = "account.register",
        /// `account.totp_postpone`.
        AccountTotpPostpone = "account.totp_postpone",
        /// `auth.login`.
        AuthLogin = "auth.login",
        /// `auth.revoke`.
        AuthRevoke = "auth.revoke",
        /// `ca.created`.
        CaCreated = "ca.created",
        /// `ca.issuing_reissued`.
        CaIssuingReissued = "ca.issuing_reissued",
        /// `credential.issuance_failed`.
        CredentialIssuanceFailed = "credential.issuance_failed",
        /// `credential.issue`.
        CredentialIssue = "credential.issue",
        /// `credential.issued`.
        CredentialIssued = "credential.issued",
        /// `credential.key_discarded`.
        CredentialKeyDiscarded = "credential.key_discarded",
        /// `credential.rekey`.
        CredentialRekey = "credential.rekey",
        /// `credential.rekey_notice`.
        CredentialRekeyNotice = "credential.rekey_notice",
        /// `credential.revoke`.
        CredentialRevoke = "credential.revoke",
        /// `credential.revoked`.
        CredentialRevoked = "credential.revoked",
        /// `credential.unissued`.
        CredentialUnissued = "credential.unissued",
        /// `credentials.authorize`.
        CredentialsAuthorize = "credentials.authorize",
        /// `credentials.extendTransaction`.
        CredentialsExtendTransaction = "credentials.extendTransaction",
        /// `crl.published`.
        CrlPublished = "crl.published",
        /// `identity.decision`.
        IdentityDecision = "identity.decision",
        /// `oauth.client_create`: an operator registered an OAuth2 client.
        OauthClientCreate = "oauth.client_create",
        /// `oauth.client_disable`: an operator disabled an OAuth2 client (its tokens are revoked).
        OauthClientDisable = "oauth.client_disable",
        /// `oauth.revoke`: a client revoked one of its tokens (`/oauth2/revoke`).
        OauthRevoke = "oauth.revoke",
        /// `oauth.token`: a token issued, or refused, at `/oauth2/token`.
        OauthToken = "oauth.token",
        /// `ocsp.responder_certified`.
        OcspResponderCertified = "ocsp.responder_certified",
        /// `operator.auth`.
        OperatorAuth = "operator.auth",
        /// `operator.create`.
        OperatorCreate = "operator.create",
        /// `operator.revoke`.
        OperatorRevoke = "operator.revoke",
        /// `order.create`.
        OrderCreate = "order.create",
        /// `order.identity_document`.
        OrderIdentityDocument = "order.identity_document",
        /// `order.invoice`.
        OrderInvoice = "order.invoice",
        /// `order.payment`.
        OrderPayment = "order.payment",
        /// `order.personal_data`.
        OrderPersonalData = "order.personal_data",
        /// `order.refund_due`.
        OrderRefundDue = "order.refund_due",
        /// `rekey.submitted`.
        RekeySubmitted = "rekey.submitted",
        /// `signatures.signHash`.
        SignaturesSignHash = "signatures.signHash",
        /// `signatures.signDoc`.
        SignaturesSignDoc = "signatures.signDoc",
        /// `signatures.timestamp`.
        SignaturesTimestamp = "signatures.timestamp",
        /// `tsa.created`.
        TsaCreated = "tsa.created",
        /// `tsa.timestamp`: a token issued through `POST /tsa`.
        TsaTimestamp = "tsa.timestamp",
        /// `totp.paired`.
        TotpPaired = "totp.paired",
        /// `totp.pairing`.
        TotpPairing = "totp.pairing",
        /// `totp.reset`.
        TotpReset = "totp.reset",
        /// `totp.reset_cancel`.
        TotpResetCancel = "totp.reset_cancel",
        /// `totp.reset_confirm`.
        TotpResetConfirm = "totp.reset_confirm",
        /// `totp.reset_identity`.
        TotpResetIdentity = "totp.reset_identity",
        /// `webhook.identity`.
        WebhookIdentity = "webhook.identity",
        /// `webhook.payment`.
        WebhookPayment = "webhook.payment",
    }
}

// The schema names in the OpenAPI document: each the type's own name.
impl utoipa::ToSchema for OrderStatus {}
impl utoipa::ToSchema for Purpose {}
impl utoipa::ToSchema for CheckStatus {}
impl utoipa::ToSchema for CheckKind {}
impl utoipa::ToSchema for CertificateStatus {}
impl utoipa::ToSchema for CredentialStatus {}
impl utoipa::ToSchema for TotpPostponement {}
impl utoipa::ToSchema for VerificationPurpose {}
impl utoipa::ToSchema for OutboxStatus {}
impl utoipa::ToSchema for Channel {}
impl utoipa::ToSchema for AccountStatus {}
impl utoipa::ToSchema for CaName {}
impl utoipa::ToSchema for TrustServiceName {}
impl utoipa::ToSchema for TimeStampRequester {}
impl utoipa::ToSchema for ApiKeyRole {}
impl utoipa::ToSchema for RevocationReason {}
impl utoipa::ToSchema for SigningSessionState {}
impl utoipa::ToSchema for SignedOutput {}
impl utoipa::ToSchema for ClientType {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(*status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        for purpose in VerificationPurpose::ALL {
            assert_eq!(purpose.as_str().parse::<VerificationPurpose>(), Ok(*purpose));
        }
        assert_eq!(
            "bogus".parse::<CheckStatus>(),
            Err(UnknownValue { what: "identity check status", text: "bogus".into() })
        );
    }
}
