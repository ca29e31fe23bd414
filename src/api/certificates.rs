//! The lifecycle API for certificates (`/api/v1`), one submodule per resource: packages and orders,
//! payments, identity checks (with what a rekey submits for one), and credentials (issuance, rekey,
//! revocation).

mod credentials;
mod identity;
mod orders;
mod payments;

use super::error::Dialect;

pub use credentials::*;
pub use identity::*;
pub use orders::*;
pub use payments::*;

const L: Dialect = Dialect::Lifecycle;
const TAG: &str = "Certificates";
