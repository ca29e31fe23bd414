//! The video-identification provider as identity checks and authenticator resets both use it: the
//! page where a check is done, and a verdict (the provider's or an operator's).

use super::{Field, ServiceError, Services};

/// The provider's page for a check.
pub fn session_url(services: &Services, check_id: &str) -> String {
    services.config.identity.session_url.replace("{check_id}", check_id)
}

/// An operator's or the provider's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject { reasons: Vec<String> },
}

impl Decision {
    /// Refuses rejection reasons that are empty, too long or too many.
    pub(super) fn check_reasons(&self) -> Result<(), ServiceError> {
        if let Decision::Reject { reasons } = self {
            if reasons.len() > 20 || reasons.iter().any(|r| r.trim().is_empty() || r.chars().count() > 200) {
                return Err(ServiceError::invalid_field(Field::Reasons, "up to 20 reasons of 1 to 200 characters"));
            }
        }
        Ok(())
    }
}
