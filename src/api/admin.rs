//! The admin API for operators (`/api/admin/v1`), authenticated by an operator API key
//! (`rssp operator create`): people, orders, identity decisions, revocation, the audit trail, the outbox.

use actix_web::web::{Data, Json, Path, Query};
use actix_web::{get, post, HttpRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::account::{AuthenticatorResetView, AuthenticatorResetsResponse};
use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{operator, run, Authed, CscJson, OperatorKey};
use super::lifecycle_types::{
    rfc3339, CredentialView, IdentityCheckView, IdentityChecksResponse, OrderView, OrdersResponse,
};
use crate::domain::{
    AccountStatus, Channel, CheckId, CheckStatus, CredentialId, OrderStatus, OutboxStatus, RevocationReason,
    TimeStampRequester, UserId,
};
use crate::service::identity;
use crate::service::identity_provider::Decision;
use crate::service::views::Person;
use crate::service::{authenticator, issuance, lifecycle_jobs, operators, Services};

pub(crate) mod oauth_clients;

const L: Dialect = Dialect::Lifecycle;
const TAG: &str = "Admin";

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub phone: Option<String>,
    /// Whether the account is activated.
    pub status: AccountStatus,
    pub created_at: String,
}

impl From<Person> for UserView {
    fn from(a: Person) -> Self {
        UserView {
            user_id: a.id.into(),
            username: a.username,
            email: a.email,
            given_name: a.given_name,
            surname: a.surname,
            phone: a.phone,
            status: a.status,
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersResponse {
    pub users: Vec<UserView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only the person with this e-mail address.
    pub email: Option<String>,
}

#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = UsersResponse), (status = 401, body = ErrorBody)))]
#[get("/users")]
pub async fn users(
    services: Data<Services>,
    request: Authed<OperatorKey, Query<UserQuery>>,
) -> Result<Json<UsersResponse>, ApiError> {
    let Authed(OperatorKey(_), query) = request;
    let rows = run(&services, L, move |s| operators::users(s, query.email.as_deref())).await?;
    Ok(Json(UsersResponse { users: rows.into_iter().map(UserView::from).collect() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetailResponse {
    pub user: UserView,
    pub credentials: Vec<CredentialView>,
    pub orders: Vec<OrderView>,
}

#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserDetailResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/users/{id}")]
pub async fn user(
    services: Data<Services>,
    req: HttpRequest,
    id: Path<UserId>,
) -> Result<Json<UserDetailResponse>, ApiError> {
    operator(&services, &req).await?;
    let (account, placed, credentials) = run(&services, L, move |s| operators::user(s, &id)).await?;
    Ok(Json(UserDetailResponse {
        user: account.into(),
        credentials: credentials.into_iter().map(CredentialView::new).collect(),
        orders: placed.into_iter().map(OrderView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Only those in this status.
    pub status: Option<String>,
}

/// The `status` filter of the orders list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderStatusQuery {
    /// Only those in this status (an unknown status matches none).
    #[param(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
}

/// The `status` filter of the identity checks list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckStatusQuery {
    /// Only those in this status (an unknown status matches none).
    #[param(value_type = Option<CheckStatus>)]
    pub status: Option<String>,
}

#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(OrderStatusQuery),
    responses((status = 200, body = OrdersResponse), (status = 401, body = ErrorBody)))]
#[get("/orders")]
pub async fn orders(
    services: Data<Services>,
    request: Authed<OperatorKey, Query<OrderStatusQuery>>,
) -> Result<Json<OrdersResponse>, ApiError> {
    let Authed(OperatorKey(_), query) = request;
    let status = match query.status.as_deref().map(str::parse::<OrderStatus>).transpose() {
        Ok(status) => status,
        Err(_) => return Ok(Json(OrdersResponse { orders: Vec::new() })),
    };
    let rows = run(&services, L, move |s| operators::orders(s, status)).await?;
    Ok(Json(OrdersResponse { orders: rows.into_iter().map(OrderView::from).collect() }))
}

#[utoipa::path(get, operation_id = "admin_identity_checks", tag = TAG, security(("bearer" = [])), params(CheckStatusQuery),
    responses((status = 200, body = IdentityChecksResponse), (status = 401, body = ErrorBody)))]
#[get("/identity-checks")]
pub async fn identity_checks(
    services: Data<Services>,
    request: Authed<OperatorKey, Query<CheckStatusQuery>>,
) -> Result<Json<IdentityChecksResponse>, ApiError> {
    let Authed(OperatorKey(_), query) = request;
    let status = match query.status.as_deref().map(str::parse::<CheckStatus>).transpose() {
        Ok(status) => status,
        Err(_) => return Ok(Json(IdentityChecksResponse { identity_checks: Vec::new() })),
    };
    let rows = run(&services, L, move |s| operators::identity_checks(s, status)).await?;
    Ok(Json(IdentityChecksResponse {
        identity_checks: rows.into_iter().map(|c| IdentityCheckView::new(&services, c)).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `accept` or `reject`.
    pub decision: String,
    /// Why a check was rejected (shown to the person).
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// An operator's verdict on a pending identity check; a rejection opens a new check for the person.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Identity check id")), request_body = DecisionRequest,
    responses((status = 200, body = IdentityCheckView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/identity-checks/{id}/decision")]
pub async fn decide(
    services: Data<Services>,
    id: Path<CheckId>,
    request: Authed<OperatorKey, CscJson<DecisionRequest>>,
) -> Result<Json<IdentityCheckView>, ApiError> {
    let Authed(OperatorKey(op), body) = request;
    let b = body.0;
    let decision = match b.decision.as_str() {
        "accept" if b.reasons.is_empty() => Decision::Accept,
        "accept" => return Err(ApiError::invalid_request("reasons: only for a rejection")),
        "reject" => Decision::Reject { reasons: b.reasons },
        _ => return Err(ApiError::invalid_request("decision: accept or reject")),
    };
    let by = format!("operator {}", op.name);
    let check = run(&services, L, move |s| identity::decide(s, &id, decision, &by)).await?;
    Ok(Json(IdentityCheckView::new(&services, check)))
}

fn parse_decision(b: DecisionRequest) -> Result<Decision, ApiError> {
    match b.decision.as_str() {
        "accept" if b.reasons.is_empty() => Ok(Decision::Accept),
        "accept" => Err(ApiError::invalid_request("reasons: only for a rejection")),
        "reject" => Ok(Decision::Reject { reasons: b.reasons }),
        _ => Err(ApiError::invalid_request("decision: accept or reject")),
    }
}

/// Authenticator resets, oldest first, optionally in one status (`pending_identity`: waiting for an
/// identity decision before the new authenticator may authorise signatures).
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(StatusQuery),
    responses((status = 200, body = AuthenticatorResetsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/authenticator-resets")]
pub async fn authenticator_resets(
    services: Data<Services>,
    request: Authed<OperatorKey, Query<StatusQuery>>,
) -> Result<Json<AuthenticatorResetsResponse>, ApiError> {
    let Authed(OperatorKey(_), query) = request;
    let resets = run(&services, L, move |s| authenticator::resets_for_operator(s, query.status.as_deref())).await?;
    Ok(Json(AuthenticatorResetsResponse { resets: resets.into_iter().map(Into::into).collect() }))
}

/// An operator's verdict on the identity check of an authenticator reset (the same decision as at
/// enrolment). Accepting lets the new authenticator authorise signatures; rejecting keeps signing blocked.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Authenticator reset id")), request_body = DecisionRequest,
    responses((status = 200, body = AuthenticatorResetView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/authenticator-resets/{id}/decision")]
pub async fn decide_authenticator_reset(
    services: Data<Services>,
    id: Path<String>,
    request: Authed<OperatorKey, CscJson<DecisionRequest>>,
) -> Result<Json<AuthenticatorResetView>, ApiError> {
    let Authed(OperatorKey(op), body) = request;
    let decision = parse_decision(body.0)?;
    let by = format!("operator {}", op.name);
    let reset = run(&services, L, move |s| authenticator::decide_reset_by_operator(s, &id, decision, &by)).await?;
    Ok(Json(reset.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminRevokeRequest {
    /// Why, in words: told to the person and kept in the audit trail.
    pub reason: String,
    /// The CRL reason the CRL entry and the OCSP answer give (RFC 5280 §5.3.1); none: unspecified.
    pub reason_code: Option<RevocationReason>,
}

/// Revokes any credential.
#[utoipa::path(post, operation_id = "admin_revoke", tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Credential id")), request_body = AdminRevokeRequest,
    responses((status = 200, body = CredentialView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/credentials/{id}/revoke")]
pub async fn revoke(
    services: Data<Services>,
    id: Path<CredentialId>,
    request: Authed<OperatorKey, CscJson<AdminRevokeRequest>>,
) -> Result<Json<CredentialView>, ApiError> {
    let Authed(OperatorKey(op), body) = request;
    let summary =
        run(&services, L, move |s| issuance::revoke_by_operator(s, &op.name, &id, &body.0.reason, body.0.reason_code))
            .await?;
    Ok(Json(CredentialView::new(summary)))
}

/// A time-stamp the TSA issued.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeStampView {
    /// The sequence number of the token's record in the audit trail: the `after` of the next page.
    pub seq: i64,
    /// TSTInfo serialNumber, lowercase hex.
    pub serial: String,
    /// genTime (RFC 3339).
    pub gen_time: String,
    /// The TSA policy OID.
    pub policy: String,
    /// The message imprint's hash algorithm OID.
    pub hash_algorithm: String,
    /// The hashed message that was time-stamped, lowercase hex.
    pub imprint: String,
    /// Who asked: `anonymous` (POST /tsa, open), `client` (POST /tsa with a TSA client's key) or
    /// `person` (CSC signatures/timestamp).
    pub requester: TimeStampRequester,
    /// The TSA client's name, or the person's user id.
    pub requester_id: Option<String>,
    /// The credential whose transaction the time-stamp spent (a person's).
    pub credential_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimeStampsResponse {
    pub timestamps: Vec<TimeStampView>,
}

/// The log of every time-stamp the TSA issued, oldest first.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = TimeStampsResponse), (status = 401, body = ErrorBody)))]
#[get("/timestamps")]
pub async fn timestamps(
    services: Data<Services>,
    request: Authed<OperatorKey, Query<PageQuery>>,
) -> Result<Json<TimeStampsResponse>, ApiError> {
    let Authed(OperatorKey(_), query) = request;
    let (after, limit) = (query.after.unwrap_or(0), query.limit.unwrap_or(crate::service::MAX_ROWS));
    let rows = run(&services, L, move |s| crate::service::timestamps::log_page(s, after, limit)).await?;
    let timestamps = rows
        .into_iter()
        .map(|r| TimeStampView {
            seq: r.seq,
            serial: r.serial,
            gen_time: rfc3339(r.gen_time),
            policy: r.policy,
            hash_algorithm: r.hash_algorithm,
            imprint: r.imprint,
            requester: r.requester,
            requester_id: r.requester_id,
            credential_id: r.credential_id,
        })
        .collect();
    Ok(Json(TimeStampsResponse { timestamps }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Records after this sequence number (default 0: from the start).
    pub after: Option<i64>,
    /// At most this many (default and maximum 500).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordView {
    pub seq: i64,
    pub at: String,
    pub event: String,
    pub outcome: String,
    pub user_id: Option<String>,
    pub credential_id: Option<String>,
    pub detail: String,
    pub hash: String,
    /// The HTTP request that wrote the record (its `X-Request-Id`), to find its log lines; absent for
    /// records of commands, background jobs and records older than the field.
    pub request_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditResponse {
    pub records: Vec<AuditRecordView>,
}

/// The audit trail, oldest first.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = AuditResponse), (status = 401, body = ErrorBody)))]
#[get("/audit")]
pub async fn audit(
    services: Data<Services>,
    request: Authed<OperatorKey, Query<PageQuery>>,
) -> Result<Json<AuditResponse>, ApiError> {
    let Authed(OperatorKey(_), query) = request;
    let (after, limit) = (query.after.unwrap_or(0), query.limit.unwrap_or(crate::service::MAX_ROWS));
    let rows = run(&services, L, move |s| operators::audit_page(s, after, limit)).await?;
    let records = rows
        .into_iter()
        .map(|r| AuditRecordView {
            seq: r.seq,
            at: rfc3339(r.at),
            event: r.event,
            outcome: r.outcome,
            user_id: r.user_id.map(String::from),
            credential_id: r.credential_id.map(String::from),
            detail: r.detail,
            hash: r.hash,
            request_id: r.request_id,
        })
        .collect();
    Ok(Json(AuditResponse { records }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only messages to this e-mail address or phone number.
    pub recipient: Option<String>,
    /// Messages after this id.
    pub after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: i64,
    /// E-mail or SMS.
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// `held` (development mode), `pending`, `sending`, `sent` or `failed`.
    pub status: OutboxStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: String,
    /// The message carries a code or a link for the person alone. In production mode its body is
    /// never shown here and is wiped once delivered.
    pub secret: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxResponse {
    /// True in development mode only: the bodies of messages with codes and links are shown (nothing
    /// is delivered, so tests and local runs read them here). In production mode they are redacted.
    pub secret_bodies_shown: bool,
    pub messages: Vec<MessageView>,
}

/// The notification outbox, oldest first. In development mode nothing leaves it and codes and links
/// can be read here (`secret_bodies_shown`); in production mode bodies with codes or links are redacted.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(OutboxQuery),
    responses((status = 200, body = OutboxResponse), (status = 401, body = ErrorBody)))]
#[get("/outbox")]
pub async fn outbox(
    services: Data<Services>,
    request: Authed<OperatorKey, Query<OutboxQuery>>,
) -> Result<Json<OutboxResponse>, ApiError> {
    let Authed(OperatorKey(_), query) = request;
    let rows =
        run(&services, L, move |s| operators::outbox(s, query.recipient.as_deref(), query.after.unwrap_or(0))).await?;
    let messages = rows
        .into_iter()
        .map(|m| MessageView {
            id: m.id,
            channel: m.channel,
            recipient: m.recipient,
            subject: m.subject,
            body: m.body,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: rfc3339(m.created_at),
            secret: m.secret,
        })
        .collect();
    Ok(Json(OutboxResponse { secret_bodies_shown: crate::notify::secret_bodies_visible(&services.config), messages }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobsResponse {
    pub rekey_notices_sent: usize,
    pub orders_marked_for_refund: usize,
    /// CRLs published because their nextUpdate came near or a revocation was not yet listed.
    pub crls_published: usize,
    /// Whether this run renewed the OCSP responder's certificate (it was near its end).
    pub ocsp_responder_renewed: bool,
    /// Document signing sessions deleted with their files because they expired.
    pub signing_sessions_deleted: usize,
}

/// Runs the lifecycle jobs now (rekey notices, refunds of stranded rekeys, CRLs due, the OCSP responder's
/// certificate when due, expired signing sessions deleted); they also run on a timer.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), responses((status = 200, body = JobsResponse), (status = 401, body = ErrorBody)))]
#[post("/scheduler/run")]
pub async fn run_jobs(services: Data<Services>, req: HttpRequest) -> Result<Json<JobsResponse>, ApiError> {
    operator(&services, &req).await?;
    let report = run(&services, L, lifecycle_jobs::run).await?;
    Ok(Json(JobsResponse {
        rekey_notices_sent: report.rekey_notices_sent,
        orders_marked_for_refund: report.orders_marked_for_refund,
        crls_published: report.crls_published,
        ocsp_responder_renewed: report.ocsp_responder_renewed,
        signing_sessions_deleted: report.signing_sessions_deleted,
    }))
}
