//! Where the person stands with pairing an authenticator app: optional, postponed, or mandatory
//! (then everything but pairing is refused).

use crate::audit;
use crate::db::accounts::{self, Account};
use crate::db::{self, authenticators, DbConnection};
use crate::domain::{AuditEventName, TotpPostponement};
use crate::service::{audited, Principal, ServiceError, Services};

use super::account_of;
use super::profile::{profile, Profile};

/// Where the person stands with the authenticator app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpStatus {
    Paired,
    /// Not paired, and no longer optional.
    Required,
    /// Not paired; the person chose to be reminded later.
    Postponed,
    /// Not paired; the front end should offer pairing.
    Optional,
}

impl TotpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TotpStatus::Paired => "paired",
            TotpStatus::Required => "required",
            TotpStatus::Postponed => "postponed",
            TotpStatus::Optional => "optional",
        }
    }
}

/// The first second (UTC) at which pairing is mandatory.
pub fn totp_mandatory_from(services: &Services) -> i64 {
    let last_day = services.config.lifecycle.totp_mandatory_after;
    last_day.succ_opt().unwrap_or(last_day).and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(i64::MAX)
}

pub(super) fn totp_status(services: &Services, account: &Account, paired: bool, now: i64) -> TotpStatus {
    if paired {
        return TotpStatus::Paired;
    }
    if now >= totp_mandatory_from(services) {
        return TotpStatus::Required;
    }
    match account.totp_postpone {
        Some(TotpPostponement::Never | TotpPostponement::NextLogin) => TotpStatus::Postponed,
        Some(TotpPostponement::Until) if account.totp_remind_at.is_some_and(|at| at > now) => TotpStatus::Postponed,
        _ => TotpStatus::Optional,
    }
}

/// Refuses everything but pairing while pairing an authenticator is mandatory and not done.
pub(in crate::service) fn require_second_factor_ready(
    services: &Services,
    conn: &mut DbConnection,
    principal: &Principal,
) -> Result<Account, ServiceError> {
    let account = account_of(conn, principal)?;
    let paired = authenticators::has_totp(conn, &account.id)?;
    if totp_status(services, &account, paired, services.now()) == TotpStatus::Required {
        return Err(ServiceError::Forbidden(format!(
            "Pair an authenticator app first: it is mandatory after {}",
            services.config.lifecycle.totp_mandatory_after
        )));
    }
    Ok(account)
}

/// How a person postpones pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postpone {
    Until(chrono::NaiveDate),
    NextLogin,
    Never,
}

pub fn postpone_totp(services: &Services, principal: &Principal, postpone: Postpone) -> Result<Profile, ServiceError> {
    audited(services, AuditEventName::AccountTotpPostpone, Some(&principal.user_id), || {
        let now = services.now();
        let mandatory_from = totp_mandatory_from(services);
        let mut conn = services.conn()?;
        if authenticators::has_totp(&mut conn, &principal.user_id)? {
            return Err(ServiceError::Conflict("An authenticator is already paired".into()));
        }
        if now >= mandatory_from {
            return Err(ServiceError::Conflict(format!(
                "Pairing an authenticator is mandatory after {}; it can no longer be postponed",
                services.config.lifecycle.totp_mandatory_after
            )));
        }
        let (mode, remind_at) = match postpone {
            Postpone::Until(date) => {
                let at = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(i64::MAX);
                if at <= now || at >= mandatory_from {
                    return Err(ServiceError::InvalidRequest(format!(
                        "date: a day after today and no later than {}",
                        services.config.lifecycle.totp_mandatory_after
                    )));
                }
                (TotpPostponement::Until, Some(at))
            }
            Postpone::NextLogin => (TotpPostponement::NextLogin, None),
            Postpone::Never => (TotpPostponement::Never, None),
        };
        db::write_transaction(&mut conn, |c| {
            accounts::set_totp_postpone(c, &principal.user_id, Some(mode), remind_at)?;
            audit::success(c, now, AuditEventName::AccountTotpPostpone, Some(&principal.user_id), None, mode.as_str())
                .map_err(ServiceError::from)
        })?;
        drop(conn);
        profile(services, principal)
    })
}
