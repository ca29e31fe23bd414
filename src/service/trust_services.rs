//! What the trust services other than the CA (the TSA, the OCSP responder) share: storing the key and
//! certificate a node made at its first start, when another node may be making its own at the same time.

use crate::audit::{self, AuditEvent};
use crate::db::trust_services::{self as store, TrustServiceKeyRow};
use crate::db::{self, DbConnection};
use crate::hsm::{KeyId, KeyStore};

use super::StartError;

/// Stores `row` (a key just generated and its certificate) with its audit record. When another node
/// stored one of the same name first (the insert fails on the primary key), the key just made is
/// destroyed and the stored row is returned: the caller uses that one. None: `row` is stored.
///
/// A key no row names is destroyed; a key the database might hold is kept (a COMMIT can fail after it
/// took effect).
pub(crate) fn store_created(
    conn: &mut DbConnection,
    keystore: &KeyStore,
    row: &TrustServiceKeyRow,
    event: AuditEvent<'_>,
) -> Result<Option<TrustServiceKeyRow>, StartError> {
    let stored = db::write_transaction(conn, |c| -> Result<(), diesel::result::Error> {
        store::insert_key(c, row)?;
        audit::record(c, row.created_at, event)
    });
    let Err(error) = stored else { return Ok(None) };
    let discard = || {
        if let Some(key) = KeyId::from_hex(&row.key_id) {
            crate::pki::ca::discard_keys(keystore, std::slice::from_ref(&key));
        }
    };
    match store::find_key(conn, row.name) {
        Ok(Some(winner)) if winner.key_id != row.key_id => {
            discard();
            Ok(Some(winner))
        }
        Ok(Some(_)) => Ok(None),
        Ok(None) => {
            discard();
            Err(error.into())
        }
        Err(lookup) => {
            tracing::warn!(
                service = row.name.as_str(),
                error = %lookup,
                "storing a new trust service key failed and the database cannot be read: the key stays on the token"
            );
            Err(error.into())
        }
    }
}
