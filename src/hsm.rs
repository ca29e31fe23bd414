//! The HSM behind a `KeyStore`: one initialised PKCS#11 module per process, a pool of logged-in
//! sessions, key generation (sensitive, non-extractable) and signing.
//!
//! The same code talks to SoftHSM in tests and on a laptop and to a network HSM in production:
//! only the module path, the token label and the PIN change.

mod keystore;
mod public_key;
mod softhsm;

pub use keystore::{
    allowed_mechanisms, finalize_modules, CaKeyLabel, GeneratedKey, HsmError, KeyId, KeyStore, SEAL_KEY_LABEL,
    SUBSCRIBER_KEY_LABEL_PREFIX,
};
pub(crate) use softhsm::embedded_so_pin;
pub use softhsm::{prepare_embedded_softhsm, softhsm_conf};
