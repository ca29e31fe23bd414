//! The HSM behind a `KeyStore`: one initialised PKCS#11 module per process, a pool of logged-in
//! sessions, key generation (sensitive, non-extractable) and signing.
//!
//! The same code talks to SoftHSM in tests and on a laptop and to a network HSM in production:
//! only the module path, the token label and the PIN change.

mod keystore;
mod public_key;
mod softhsm;

pub use keystore::{
    allowed_mechanisms, finalize_modules, AuthorityKeyLabel, GeneratedKey, HsmError, KeyId, KeyStore, SEAL_KEY_LABEL,
    SUBSCRIBER_KEY_LABEL_PREFIX,
};
pub(crate) use softhsm::embedded_so_pin;
pub use softhsm::{prepare_embedded_softhsm, softhsm_conf};

/// SoftHSM for the library's unit tests. Every SoftHSM instance of a process reads `SOFTHSM2_CONF`, and
/// the token directory it names, again at each C_Initialize; so the tests share one configuration, set
/// once, and the tests that create tokens or restart a module run one at a time (a restart could
/// otherwise read a token another test is half-way through writing, or a configuration another test
/// just set).
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard, OnceLock};

    /// The directory holding this process's test configuration and `tokens/`.
    pub(crate) fn softhsm_dir() -> &'static Path {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("rssp-unit-hsm-{}", std::process::id()));
            let tokens = dir.join("tokens");
            std::fs::create_dir_all(&tokens).unwrap();
            let conf = dir.join("softhsm2.conf");
            std::fs::write(&conf, super::softhsm_conf(&tokens)).unwrap();
            std::env::set_var("SOFTHSM2_CONF", &conf);
            dir
        })
    }

    /// Held for the whole of a test that uses SoftHSM; also makes sure the configuration is in place.
    pub(crate) fn exclusive() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        softhsm_dir();
        guard
    }
}
