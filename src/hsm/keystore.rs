use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::Function;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::Encode;
use zeroize::Zeroizing;

use super::public_key;
use crate::domain::algorithms::ecdsa_raw_to_der;
use crate::domain::{secrets, HashAlgorithm, KeyKind, SignatureScheme};
use crate::metrics::METRICS;

/// A failure of the HSM or of what rssp expected of it.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The PKCS#11 module returned an error (its return code is in the message).
    #[error("PKCS#11: {0}")]
    Pkcs11(#[from] CkError),
    /// No token with the configured label.
    #[error("no token labelled {0:?} on the PKCS#11 module")]
    TokenNotFound(String),
    /// No key with this `CKA_ID` (hex) on the token.
    #[error("no key with id {0} on the token")]
    KeyNotFound(String),
    /// A public key or signature from the HSM that rssp cannot read.
    #[error("unexpected key material from the HSM: {0}")]
    BadKeyMaterial(String),
    /// A sealed value that does not open: altered, moved to another row, or sealed under another key.
    #[error("a sealed value does not open (altered, moved or sealed by another key)")]
    SealBroken,
    /// The seal key is missing although sealed seeds exist; the label is named.
    #[error("no sealing key labelled {0:?} on the token, but the database holds seeds sealed with one: restore the HSM token (a new key would make every authenticator unusable)")]
    SealKeyNotFound(&'static str),
    /// The token refused the user PIN when rssp logged in again (wrong, locked or expired PIN). rssp
    /// stops logging in until it restarts, so that it cannot use up the token's PIN retries.
    #[error("the HSM token refused the user PIN; rssp no longer logs in: correct the PIN and restart")]
    LoginRefused,
    /// Every session stayed busy for the whole wait (`hsm.session_wait_ms`): the HSM is overloaded.
    #[error("no HSM session came free in time")]
    Busy,
}

/// Label of the subscriber (signing) keys: `rssp-subscriber-<credential id>`. CA keys carry their own
/// `rssp-ca-*` and `rssp-tsa` labels (see [`AuthorityKeyLabel`]), so they are told apart on the token.
pub const SUBSCRIBER_KEY_LABEL_PREFIX: &str = "rssp-subscriber-";

/// The labels of the keys rssp signs with as an authority (CA, TSA), distinct from every subscriber label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityKeyLabel {
    /// The root CA key.
    Root,
    /// The issuing CA key.
    Issuing,
    /// The time-stamping unit's key.
    TimeStamping,
    /// The delegated OCSP responder's key.
    OcspResponder,
}

impl AuthorityKeyLabel {
    /// The `CKA_LABEL` on the token.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorityKeyLabel::Root => "rssp-ca-root",
            AuthorityKeyLabel::Issuing => "rssp-ca-issuing",
            AuthorityKeyLabel::TimeStamping => "rssp-tsa",
            AuthorityKeyLabel::OcspResponder => "rssp-ocsp",
        }
    }
}

/// Label of the AES-256 key that seals secrets at rest (TOTP seeds). It never leaves the HSM.
pub const SEAL_KEY_LABEL: &str = "rssp-totp-seal";
/// AES-GCM nonce length: 96 random bits per sealed value.
const SEAL_IV_LEN: usize = 12;
/// AES-GCM tag length in bits.
const SEAL_TAG_BITS: u64 = 128;

/// The `CKA_ID` that links a key pair to what rssp knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(Vec<u8>);

impl KeyId {
    pub(crate) fn random() -> KeyId {
        KeyId(secrets::random_bytes::<16>().to_vec())
    }
    /// A key id from its hex form; None when not hex or empty.
    pub fn from_hex(text: &str) -> Option<KeyId> {
        hex::decode(text).ok().filter(|b| !b.is_empty()).map(KeyId)
    }
    pub(crate) fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// A key pair generated in the HSM: its id and its public key as DER SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The `CKA_ID` of the pair.
    pub id: KeyId,
    pub(crate) public_key_der: Vec<u8>,
}

/// A PKCS#11 module this process initialised, shared by every key store on it.
#[derive(Clone)]
struct Module {
    pkcs11: Pkcs11,
    /// The session epoch (see [`Pool`]). Session numbers belong to the module, not to one store: the
    /// subscribers' store and a CA store on the same module draw from one count.
    session_epoch: Arc<AtomicU64>,
}

/// The PKCS#11 modules this process initialised, by path.
static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();

/// One PKCS#11 module may be initialised once per process; every key store shares it.
fn module(path: &Path) -> Result<Module, HsmError> {
    let mut modules = MODULES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = modules.get(path) {
        return Ok(existing.clone());
    }
    let pkcs11 = Pkcs11::new(path)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let module = Module { pkcs11, session_epoch: Arc::new(AtomicU64::new(0)) };
    modules.insert(path.to_path_buf(), module.clone());
    Ok(module)
}

/// Finalizes (`C_Finalize`) every module this process initialised: the last step of a shutdown, once
/// every [`KeyStore`] is dropped (dropping one closes its sessions, and with the last one the token
/// logs out). A network HSM then frees this client's sessions at once instead of when it notices
/// the connection is gone. Returns how many modules were finalized.
pub fn finalize_modules() -> usize {
    let Some(modules) = MODULES.get() else { return 0 };
    let modules: Vec<(PathBuf, Module)> = modules.lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
    let count = modules.len();
    for (path, module) in modules {
        if let Err(e) = module.pkcs11.finalize() {
            tracing::warn!(module = %path.display(), error = %e, "PKCS#11 finalize failed");
        }
    }
    count
}

/// Token initialisation must not race within a process (tests start many servers at once).
static TOKEN_INIT: Mutex<()> = Mutex::new(());

/// What this store knows of its login to the token, behind [`KeyStore::login`].
struct LoginState {
    /// Counts the new logins since the store opened (and failed attempts). Each may change what a handle names.
    generation: u64,
    /// The token refused the PIN (wrong, locked, expired): no login is tried again until a restart.
    refused: bool,
}

/// Why a handle cached by this store always names the object it was looked up for (a token may hand
/// out the same handle numbers to other objects after a logout, and then a stale handle would sign with
/// another subscriber's key):
/// - every operation that looks a handle up, caches it or uses it runs inside `KeyStore::with_session`,
///   holding the read side of `KeyStore::login` from the lookup to the last use;
/// - a login (after the token forgot it, or with a replacement session) happens only under the write
///   side; when the token takes it as a new login (the application was logged out), the handle caches
///   are emptied before the write side is let go. No operation is in flight then, so none can use or
///   cache a handle from before it, and every handle cached afterwards was looked up after it. When the
///   token answers that the application is logged in already, no logout happened and the handles stand;
/// - rssp logs the user out nowhere else (only the security officer, while a new token is set up), so a
///   logout it did not order this way cannot happen inside the process. A cached handle is therefore used
///   as it is, without reading its `CKA_ID` back: on a network HSM that would be one more round trip on
///   every signature;
/// - a key destroyed by this store leaves the index at once and never comes back into it; a key destroyed
///   elsewhere leaves it when the token says its handle is invalid (see [`KeyStore::sign_digests`]). The
///   token must not give a destroyed object's handle number to another object while the application
///   stays logged in (SoftHSM never reuses one): rssp destroys only keys that back no credential, so a
///   live credential's handle goes stale only if its key is destroyed behind rssp's back.
pub struct KeyStore {
    pkcs11: Pkcs11,
    slot: Slot,
    /// The user PIN, kept to log in again when the token forgot the login (see [`KeyStore::with_session`]).
    pin: AuthPin,
    /// The logged-in sessions, see [`Pool`].
    pool: Mutex<Pool>,
    /// Signalled whenever a session goes back to the pool or leaves it for good.
    returned: Condvar,
    /// Most sessions open at once (`hsm.sessions`).
    capacity: usize,
    /// Longest wait for a free session (`hsm.session_wait_ms`); then [`HsmError::Busy`].
    session_wait: Duration,
    /// Private-key handles by key id, for the current login only (see [`LoginState`] and [`KeyIndex`]).
    index: Mutex<KeyIndex>,
    /// Held by the one request that reads every key into an incomplete index; the others search for
    /// their own key meanwhile (see [`KeyStore::private_key`]).
    rebuilding: Mutex<()>,
    /// The sealing key's handle, once found (see [`KeyStore::prepare_seal_key`]); current login only.
    seal_key: Mutex<Option<ObjectHandle>>,
    /// Read-held by every operation, write-held by a new login: see the comment on this struct.
    login: RwLock<LoginState>,
    /// How often this store called C_Login after it opened (to log in again or with a new session).
    relogin_attempts: AtomicU64,
    /// The module's session epoch (see [`Pool`]): raised when a session of the latest epoch is discarded
    /// as dead, and when a replacement session finds the application logged out (a restarted token). A
    /// session of an older epoch is refused in [`KeyStore::attempt`], under the read side of the login
    /// lock, while this store opens a replacement (which may get an old number) under the write side.
    /// Handles looked up in an older epoch are forgotten too (see [`KeyStore::index`]).
    session_epoch: Arc<AtomicU64>,
    /// Searches of the token for every key, and for one key (see [`KeySearches`]).
    searches_all: AtomicU64,
    searches_one: AtomicU64,
}

/// How often a [`KeyStore`] searched its token for keys since it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySearches {
    /// Every key read into the index: at the start, and at the first lookup after a new login.
    pub all: u64,
    /// One key searched for by its id: a key the index did not know (made by another node).
    pub one: u64,
}

/// Handles fetched per C_FindObjects call when every key is indexed.
const INDEX_BATCH: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(1024) {
    Some(n) => n,
    None => unreachable!(),
};

/// The private keys' handles this store knows, by key id, for the current login.
#[derive(Default)]
struct KeyIndex {
    handles: HashMap<KeyId, ObjectHandle>,
    /// Every private key on the token was read into `handles` in this login (see [`KeyStore::private_key`]).
    complete: bool,
    /// Keys this store destroyed (a few: issuances that failed), for the life of the store: a read of
    /// every key that began before a destroy must not put the destroyed key's handle back.
    destroyed: std::collections::HashSet<KeyId>,
    /// The session epoch the handles were looked up in.
    epoch: u64,
}

impl KeyIndex {
    /// The index of a new login: no handle is promised any more; what was destroyed stays destroyed.
    fn forget_handles(&mut self) {
        self.handles.clear();
        self.complete = false;
    }
}

/// How long a request waits for a free HSM session unless configured (`hsm.session_wait_ms`).
const DEFAULT_SESSION_WAIT: Duration = Duration::from_secs(5);

/// The sessions of a [`KeyStore`]. A `Session` is `Send` but not `Sync`: each is used by one thread at a
/// time, checked out of `idle` and put back when the operation ends. A session the token closed or whose
/// device failed is not put back but discarded, and `open` counts it no more: the next check-out opens a
/// new one in its place, so the pool never shrinks for good and never hands out a dead session twice.
///
/// A token that closed one session may have closed them all (a restart), and then it hands out the old
/// numbers again to the sessions opened since: a session kept from before would name another thread's
/// session. So each session carries the epoch it was opened in (see [`KeyStore::session_epoch`]), and
/// one from before the token was last seen closing a session is never used again.
struct Pool {
    /// Idle sessions, each with the epoch it was opened in.
    idle: Vec<(Session, u64)>,
    /// Sessions open now, idle and checked out: at most [`KeyStore::capacity`].
    open: usize,
}

/// A session checked out of the pool; back into it when dropped, unless it was discarded.
struct CheckedOut<'a> {
    store: &'a KeyStore,
    /// None once discarded (see [`CheckedOut::discard`]) and not replaced.
    session: Option<Session>,
    /// The epoch the session was opened in (see [`Pool`]).
    epoch: u64,
}

impl CheckedOut<'_> {
    // Present from check-out until drop; only a discard empties it, and then the operation ends
    // without using it again (see `recover`).
    #[allow(clippy::expect_used)]
    fn session(&self) -> &Session {
        self.session.as_ref().expect("present until drop")
    }

    /// Takes the session out of service: it does not go back to the pool, which opens a new one in its
    /// place when one is next needed.
    fn discard(&mut self) {
        let Some(session) = self.session.take() else { return };
        // Whether the token closed it or its device failed (a restart, a failover), the session's number
        // may have been given to a session opened since (a restarted token counts from 1 again), and
        // closing it would close that one: it is let go without C_CloseSession (the HSM ends what is
        // left of it with the connection). Every session opened until now may be gone with it, so a new
        // epoch begins (unless one began since this session was opened).
        self.store.session_epoch.fetch_max(self.epoch + 1, Ordering::SeqCst);
        std::mem::forget(session);
    }

    /// A new logged-in session in the place of none (a discarded one, or a free place in the pool).
    fn replace(&mut self) -> Result<(), HsmError> {
        let (session, epoch) = self.store.open_replacement()?;
        self.session = Some(session);
        self.epoch = epoch;
        Ok(())
    }

    /// Discards the session when `result` says it is dead; returns `result` as it is.
    fn discard_if_dead<T>(&mut self, result: Result<T, HsmError>) -> Result<T, HsmError> {
        if let Err(e) = &result {
            if session_death(e).is_some() {
                tracing::warn!(slot = %self.store.slot, error = %e, "an HSM session failed; it is replaced by a new one");
                self.discard();
            }
        }
        result
    }
}

impl Drop for CheckedOut<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.pool.lock().unwrap_or_else(|e| e.into_inner());
        match self.session.take() {
            Some(session) => pool.idle.push((session, self.epoch)),
            None => pool.open -= 1,
        }
        drop(pool);
        self.store.returned.notify_one();
        METRICS.hsm_sessions_in_use.dec();
    }
}

impl KeyStore {
    /// Opens the token labelled `label`, logs in and keeps `sessions` sessions open. With `init_so_pin`,
    /// a missing token is created in a free slot first (the embedded SoftHSM default). The user PIN
    /// stays a secret type (cryptoki's `AuthPin` is one) all the way to C_Login and C_InitPIN.
    pub fn open(
        module_path: &Path,
        label: &str,
        pin: &AuthPin,
        sessions: usize,
        init_so_pin: Option<&str>,
    ) -> Result<KeyStore, HsmError> {
        let Module { pkcs11, session_epoch } = module(module_path)?;
        let slot = {
            let _guard = TOKEN_INIT.lock().unwrap_or_else(|e| e.into_inner());
            match find_token(&pkcs11, label)? {
                // A token rssp created whose user PIN was never set (a first start that stopped between
                // the two steps, e.g. on a PIN SoftHSM refused): finish it instead of failing forever.
                Some(slot) => {
                    if let Some(so_pin) = init_so_pin {
                        if !pkcs11.get_token_info(slot)?.user_pin_initialized() {
                            init_user_pin(&pkcs11, slot, so_pin, pin)?;
                        }
                    }
                    slot
                }
                None => match init_so_pin {
                    Some(so_pin) => init_token(&pkcs11, label, so_pin, pin)?,
                    None => return Err(HsmError::TokenNotFound(label.to_string())),
                },
            }
        };
        warn_missing_mechanisms(&pkcs11, slot, label, &SIGNING_MECHANISMS);
        let pin = pin.clone();
        let capacity = sessions.max(1);
        let mut idle = Vec::with_capacity(capacity);
        for _ in 0..capacity {
            idle.push((open_logged_in(&pkcs11, slot, &pin)?.0, 0));
        }
        Ok(KeyStore {
            pkcs11,
            slot,
            pin,
            pool: Mutex::new(Pool { idle, open: capacity }),
            returned: Condvar::new(),
            capacity,
            session_wait: DEFAULT_SESSION_WAIT,
            index: Mutex::new(KeyIndex::default()),
            rebuilding: Mutex::new(()),
            seal_key: Mutex::new(None),
            login: RwLock::new(LoginState { generation: 0, refused: false }),
            relogin_attempts: AtomicU64::new(0),
            session_epoch,
            searches_all: AtomicU64::new(0),
            searches_one: AtomicU64::new(0),
        })
        .and_then(|store| {
            // Every key is indexed now, so that no request pays for a search of the token.
            let started = Instant::now();
            let keys = store.with_session(|session| store.index_all_keys(session))?;
            tracing::info!(
                token = label,
                keys,
                ms = started.elapsed().as_millis() as u64,
                "indexed the private keys on the token"
            );
            Ok(store)
        })
    }

    /// The store with another longest wait for a free session (`hsm.session_wait_ms`).
    pub fn with_session_wait(mut self, wait: Duration) -> KeyStore {
        self.session_wait = wait;
        self
    }

    /// How often this store called C_Login since it opened (the first logins excepted): an operator's
    /// and the tests' view of whether it keeps trying.
    pub fn relogin_attempts(&self) -> u64 {
        self.relogin_attempts.load(Ordering::SeqCst)
    }

    /// How often this store searched its token for keys since it opened.
    pub fn key_searches(&self) -> KeySearches {
        KeySearches { all: self.searches_all.load(Ordering::SeqCst), one: self.searches_one.load(Ordering::SeqCst) }
    }

    /// A session for one operation: an idle one; else a new one in place of one that was discarded;
    /// else the first one put back within `session_wait`. No longer: a request that gets none is
    /// refused with [`HsmError::Busy`] (503) instead of queueing behind an HSM that cannot keep up.
    fn check_out(&self) -> Result<CheckedOut<'_>, HsmError> {
        let deadline = Instant::now() + self.session_wait;
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let mut waited = false;
        loop {
            if let Some((session, epoch)) = pool.idle.pop() {
                drop(pool);
                METRICS.hsm_sessions_in_use.inc();
                // The guard puts the session back even if the caller panics.
                return Ok(CheckedOut { store: self, session: Some(session), epoch });
            }
            if pool.open < self.capacity {
                pool.open += 1;
                drop(pool);
                METRICS.hsm_sessions_in_use.inc();
                // Counted in `open` already; a failed opening gives the place back when the guard drops.
                let mut out = CheckedOut { store: self, session: None, epoch: 0 };
                out.replace()?;
                return Ok(out);
            }
            if !waited {
                waited = true;
                METRICS.hsm_session_waits.inc();
            }
            let now = Instant::now();
            if now >= deadline {
                METRICS.hsm_session_timeouts.inc();
                tracing::warn!(slot = %self.slot, wait_ms = self.session_wait.as_millis() as u64, "no HSM session came free in time");
                return Err(HsmError::Busy);
            }
            pool = self.returned.wait_timeout(pool, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// A new logged-in session in place of a discarded one. It logs in under the write side of the login
    /// lock like any new login (see [`KeyStore`]): the token may have forgotten the login with the old
    /// session (a restart closes every session), and then the cached handles are no longer promised.
    /// When the token still knows the login (another session of this store logged in again already, or
    /// only this session died), the handles stand. Returns the session with the epoch it was opened in.
    fn open_replacement(&self) -> Result<(Session, u64), HsmError> {
        let mut login = self.login.write().unwrap_or_else(|e| e.into_inner());
        if login.refused {
            return Err(HsmError::LoginRefused);
        }
        let generation = login.generation;
        let session = self.new_login(&mut login, || open_logged_in(&self.pkcs11, self.slot, &self.pin))?;
        if login.generation != generation {
            // The application was logged out: the token restarted (or logged it out), and every session
            // opened before may be gone, its number free for new ones such as this.
            self.session_epoch.fetch_add(1, Ordering::SeqCst);
        }
        Ok((session, self.session_epoch.load(Ordering::SeqCst)))
    }

    /// Runs `f` on the session under the read side of the login lock; with the login generation it ran in.
    /// Refused at once when the token refused the PIN.
    fn attempt<T>(
        &self,
        out: &CheckedOut<'_>,
        f: &impl Fn(&Session) -> Result<T, HsmError>,
    ) -> Result<(u64, Result<T, HsmError>), HsmError> {
        let login = self.login.read().unwrap_or_else(|e| e.into_inner());
        if login.refused {
            return Err(HsmError::LoginRefused);
        }
        if out.epoch < self.session_epoch.load(Ordering::SeqCst) {
            // Opened before the token closed sessions: its number may name another session now. It is
            // answered as closed, so that `recover` lets it go (without closing it) and opens a new one.
            let stale = HsmError::Pkcs11(CkError::Pkcs11(RvError::SessionHandleInvalid, Function::GetSessionInfo));
            return Ok((login.generation, Err(stale)));
        }
        Ok((login.generation, f(out.session())))
    }

    /// Runs `f` with an idle session, waiting for one when all are busy.
    ///
    /// Sessions live as long as the process, but a token may forget them: a network HSM that logs out idle
    /// applications (Utimaco's `AppTimeout`), restarts, or fails over to another member; another
    /// application of this process calling `C_Logout` (the login is shared by the whole application).
    /// When `f` fails because the session is no longer logged in, the session logs in again and `f` runs
    /// once more; when the session itself is gone, a new logged-in session replaces it. Any other error,
    /// and a second failure, is returned as it is; a session that failed with its device is discarded.
    fn with_session<T>(&self, f: impl Fn(&Session) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let mut out = self.check_out()?;
        let (generation, result) = self.attempt(&out, &f)?;
        let result = match result {
            Err(e) => {
                if self.recover(&mut out, &e, generation)? {
                    self.attempt(&out, &f)?.1
                } else {
                    Err(e)
                }
            }
            ok => ok,
        };
        out.discard_if_dead(result)
    }

    /// Like [`KeyStore::with_session`], but `f` runs at most once (it makes something that must not be
    /// made twice). A forgotten login or a dead session is mended before, found by asking the session's
    /// state (one cheap call, on a path that is rare and slow anyway).
    fn with_session_once<T>(&self, f: impl Fn(&Session) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let mut out = self.check_out()?;
        let (generation, state) = self.attempt(&out, &|session| {
            if is_logged_in(session)? {
                Ok(())
            } else {
                Err(HsmError::Pkcs11(CkError::Pkcs11(RvError::UserNotLoggedIn, Function::GetSessionInfo)))
            }
        })?;
        if let Err(e) = state {
            if !self.recover(&mut out, &e, generation)? {
                return out.discard_if_dead(Err(e));
            }
        }
        let result = self.attempt(&out, &f)?.1;
        out.discard_if_dead(result)
    }

    /// After `error` from an operation that ran in login `generation`: mends the session when the error
    /// says it lost its login or died, and tells whether the operation may run again. False: the error
    /// stands as it is.
    fn recover(&self, out: &mut CheckedOut<'_>, error: &HsmError, generation: u64) -> Result<bool, HsmError> {
        match error {
            // A session from before the token closed sessions: its state would be another session's.
            e if may_mean_logged_out(e) && out.epoch < self.session_epoch.load(Ordering::SeqCst) => {
                out.discard();
                out.replace()?;
                Ok(true)
            }
            // A token that forgot the login hides private objects: lookups find nothing, cached handles
            // are invalid. Only then is the session's state asked (no cost on the ordinary path).
            e if may_mean_logged_out(e) => {
                let mut login = self.login.write().unwrap_or_else(|e| e.into_inner());
                if login.refused {
                    return Err(HsmError::LoginRefused);
                }
                // Another thread logged in again while the operation ran: it runs again, afresh.
                if login.generation != generation {
                    return Ok(true);
                }
                // Still logged in (or the state cannot be read): the error stands as it was.
                if is_logged_in(out.session()).unwrap_or(true) {
                    return Ok(false);
                }
                tracing::warn!(slot = %self.slot, "the HSM token forgot the login; logging in again");
                self.new_login(&mut login, || Ok(((), login_user(out.session(), &self.pin)?)))?;
                Ok(true)
            }
            HsmError::Pkcs11(CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _)) => {
                tracing::warn!(slot = %self.slot, "an HSM session was closed by the token; opening a new one");
                // Let go of the dead one first, so that it never goes back to the pool, also when no new
                // one can be opened (then the pool opens one at a later check-out).
                out.discard();
                // A closed session may mean a restarted token, which logs in anew with the new session.
                out.replace()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Logs in with `log_in`, holding the write side of the login lock (`login`). When the token took a
    /// new login (`log_in` says [`Login::New`]), the handle caches are emptied, since a handle is only
    /// promised to stay the same while the object stays accessible and after a logout the token may hand
    /// out others; no operation runs meanwhile (the write side is held). When the token still knew the
    /// login ([`Login::Kept`]), nothing was logged out and every handle stands. A PIN the token refuses is
    /// not tried again: repeating it would use up the token's retries and lock the user out of the HSM
    /// for every node.
    fn new_login<T>(
        &self,
        login: &mut LoginState,
        log_in: impl FnOnce() -> Result<(T, Login), HsmError>,
    ) -> Result<T, HsmError> {
        self.relogin_attempts.fetch_add(1, Ordering::SeqCst);
        match log_in() {
            Ok((value, Login::New)) => {
                self.forget_login(login);
                Ok(value)
            }
            Ok((value, Login::Kept)) => Ok(value),
            Err(HsmError::Pkcs11(CkError::Pkcs11(rv, _))) if pin_refused(rv) => {
                login.refused = true;
                tracing::error!(
                    slot = %self.slot,
                    error = %rv,
                    "the HSM token refused the user PIN: rssp stops logging in until it restarts, and every \
                     request that needs the HSM fails with 503; correct the PIN (or unlock it) and restart"
                );
                Err(HsmError::LoginRefused)
            }
            Err(e) => {
                // Whatever the token did, the handles are not promised any more.
                self.forget_login(login);
                Err(e)
            }
        }
    }

    /// Forgets every handle of the login that ended (keys and the seal key) and starts the next one.
    fn forget_login(&self, login: &mut LoginState) {
        self.index.lock().unwrap_or_else(|e| e.into_inner()).forget_handles();
        *self.seal_key.lock().unwrap_or_else(|e| e.into_inner()) = None;
        login.generation += 1;
    }

    /// Readiness, cheap and never in the way of signing: an idle session, if one is idle right now, is
    /// asked its state (C_GetSessionInfo); when every session is busy, the token is asked its information
    /// (C_GetTokenInfo, no session needed). Either fails when the module or the HSM behind it is gone. A
    /// token that refused the PIN is [`HsmError::LoginRefused`] without asking it.
    pub fn check(&self) -> Result<(), HsmError> {
        if self.login.read().unwrap_or_else(|e| e.into_inner()).refused {
            return Err(HsmError::LoginRefused);
        }
        let idle = self.pool.lock().unwrap_or_else(|e| e.into_inner()).idle.pop();
        match idle {
            Some((session, epoch)) => {
                METRICS.hsm_sessions_in_use.inc();
                let mut out = CheckedOut { store: self, session: Some(session), epoch };
                // A session from before the token closed sessions is let go unasked (its number may be
                // another's now); while a replacement is being opened, the token is asked instead.
                if epoch < self.session_epoch.load(Ordering::SeqCst) {
                    out.discard();
                    self.pkcs11.get_token_info(self.slot)?;
                    return Ok(());
                }
                let Ok(_login) = self.login.try_read() else {
                    drop(out);
                    self.pkcs11.get_token_info(self.slot)?;
                    return Ok(());
                };
                match out.discard_if_dead(out.session().get_session_info().map_err(HsmError::from)) {
                    Ok(_) => {}
                    // A session the token closed is discarded, and the pool opens a new one at the next
                    // check-out: no verdict on the node, so the token itself is asked.
                    Err(HsmError::Pkcs11(CkError::Pkcs11(
                        RvError::SessionHandleInvalid | RvError::SessionClosed,
                        _,
                    ))) => {
                        self.pkcs11.get_token_info(self.slot)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                self.pkcs11.get_token_info(self.slot)?;
            }
        }
        Ok(())
    }

    /// Generates a subscriber's signing key pair on the token, labelled
    /// `rssp-subscriber-<label>` (the label is the credential id).
    pub fn generate(&self, kind: KeyKind, label: &str) -> Result<GeneratedKey, HsmError> {
        self.generate_labelled(kind, &format!("{SUBSCRIBER_KEY_LABEL_PREFIX}{label}"))
    }

    /// Generates an authority's key pair (CA, TSA) on the token under its own label.
    pub fn generate_authority(&self, kind: KeyKind, label: AuthorityKeyLabel) -> Result<GeneratedKey, HsmError> {
        self.generate_labelled(kind, label.as_str())
    }

    /// Generates a key pair that can sign and do nothing else: the private key is sensitive, never
    /// extractable, cannot decrypt, unwrap or derive, cannot be modified or copied, and is limited to
    /// the mechanisms rssp signs with for its kind (`CKA_ALLOWED_MECHANISMS`). The public key only verifies.
    fn generate_labelled(&self, kind: KeyKind, label: &str) -> Result<GeneratedKey, HsmError> {
        let id = KeyId::random();
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.0.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Modifiable(false),
                Attribute::Copyable(false),
                Attribute::Destroyable(true),
            ]
        };
        let mut private = common(true);
        private.extend(signing_key_attributes(kind));
        let mut public = common(false);
        public.extend([Attribute::Verify(true), Attribute::Encrypt(false), Attribute::Wrap(false)]);
        let mechanism = if kind.is_rsa() {
            public.extend([
                Attribute::ModulusBits((kind.bits() as u64).into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ]);
            Mechanism::RsaPkcsKeyPairGen
        } else {
            public.push(Attribute::EcParams(curve_params(kind)?));
            Mechanism::EccKeyPairGen
        };
        // Run once, never again after a re-login: a pair may exist by then, and a second one under the
        // same CKA_ID would make the id name two keys.
        let generated = self.with_session_once(|session| {
            let epoch = self.session_epoch.load(Ordering::SeqCst);
            let (public_handle, private_handle) = session.generate_key_pair(&mechanism, &public, &private)?;
            let public_key_der = read_public_key(session, public_handle, kind)?;
            self.remember(epoch, &id, private_handle);
            Ok(public_key_der)
        });
        match generated {
            Ok(public_key_der) => Ok(GeneratedKey { id, public_key_der }),
            // No session came free: nothing was generated, so there is nothing to clean up (and waiting
            // for a session again to look would only double the wait).
            Err(HsmError::Busy) => Err(HsmError::Busy),
            Err(e) => {
                // Whatever failed, objects may exist under this id (the public key could not be read, or a
                // module made them and still answered an error): none may stay behind a failed generation.
                if let Err(cleanup) = self.destroy(&id) {
                    tracing::error!(key_id = %id.to_hex(), error = %cleanup, "a key pair whose generation failed could not be destroyed");
                }
                Err(e)
            }
        }
    }

    /// Destroys the key pair with this id (private and public key objects): what an issuance that
    /// failed after generating the key leaves behind. True when there was anything to destroy.
    pub fn destroy(&self, id: &KeyId) -> Result<bool, HsmError> {
        self.with_session(|session| {
            {
                let mut index = self.index();
                index.destroyed.insert(id.clone());
                index.handles.remove(id);
            }
            let objects = session.find_objects(&[Attribute::Id(id.0.clone())])?;
            for object in &objects {
                session.destroy_object(*object)?;
            }
            Ok(!objects.is_empty())
        })
    }

    /// How many private keys the token holds (CA keys included): for checks that every key on the
    /// token is known to the database. Its cost grows with the token; not for request paths.
    pub fn private_key_count(&self) -> Result<usize, HsmError> {
        self.with_session(|session| Ok(session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?.len()))
    }

    /// The public key (DER SubjectPublicKeyInfo) of a key pair on the token.
    pub fn public_key(&self, id: &KeyId, kind: KeyKind) -> Result<Vec<u8>, HsmError> {
        self.with_session(|session| {
            let template = [Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(id.0.clone())];
            let handle = *session.find_objects(&template)?.first().ok_or_else(|| HsmError::KeyNotFound(id.to_hex()))?;
            read_public_key(session, handle, kind)
        })
    }

    /// True when the token holds a private key with this id.
    pub fn has_key(&self, id: &KeyId) -> Result<bool, HsmError> {
        match self.with_session(|session| self.private_key(session, id)) {
            Ok(_) => Ok(true),
            Err(HsmError::KeyNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The handle of the private key with this id. Called only inside [`KeyStore::with_session`], so no
    /// new login can come between this lookup and the handle's use (see [`KeyStore`]).
    ///
    /// From the index when it knows the key. Otherwise, when the index is not complete for this login
    /// (a new login emptied it), one request reads every key into it, in one pass, while the others
    /// search for their own key: a search of the token costs about as much as reading every key once on
    /// SoftHSM, whose object store checks each object file on every search. A key the complete index
    /// does not know was made since it was read (on another node) or does not exist, and is searched
    /// for by its id.
    fn private_key(&self, session: &Session, id: &KeyId) -> Result<ObjectHandle, HsmError> {
        let complete = {
            let index = self.index();
            if let Some(handle) = index.handles.get(id) {
                return Ok(*handle);
            }
            index.complete
        };
        if !complete {
            let rebuilder = match self.rebuilding.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            // Read again under the rebuild lock: the request before may have completed the index.
            if rebuilder.is_some() && !self.index().complete {
                self.index_all_keys(session)?;
            }
            if let Some(handle) = self.index().handles.get(id) {
                return Ok(*handle);
            }
        }
        METRICS.hsm_key_searches.with_label_values(&["one"]).inc();
        self.searches_one.fetch_add(1, Ordering::SeqCst);
        let epoch = self.session_epoch.load(Ordering::SeqCst);
        let template = [Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(id.0.clone())];
        let handle = *session.find_objects(&template)?.first().ok_or_else(|| HsmError::KeyNotFound(id.to_hex()))?;
        self.remember(epoch, id, handle);
        Ok(handle)
    }

    /// Reads the id of every private key on the token into the index, which is complete afterwards for
    /// this login; returns how many keys there are. One search, then one read per key (C_GetAttributeValue):
    /// the cost of a start, or of the first lookup after a new login, never of each request.
    fn index_all_keys(&self, session: &Session) -> Result<usize, HsmError> {
        METRICS.hsm_key_searches.with_label_values(&["all"]).inc();
        self.searches_all.fetch_add(1, Ordering::SeqCst);
        let epoch = self.session_epoch.load(Ordering::SeqCst);
        let template = [Attribute::Token(true), Attribute::Class(ObjectClass::PRIVATE_KEY)];
        // Handles in batches of up to 1,024 per C_FindObjects (one round trip per batch to a network HSM),
        // all of them before any is read: the search ends (C_FindObjectsFinal) before the first
        // C_GetAttributeValue, which some tokens refuse while a search is open on the session.
        let handles = session.iter_objects_with_cache_size(&template, INDEX_BATCH)?.collect::<Result<Vec<_>, _>>()?;
        let mut found = HashMap::new();
        for handle in handles {
            match session.get_attributes(handle, &[AttributeType::Id]) {
                Ok(attributes) => {
                    if let Some(Attribute::Id(id)) = attributes.into_iter().next() {
                        if !id.is_empty() {
                            found.insert(KeyId(id), handle);
                        }
                    }
                }
                // Destroyed (by another node) between the search and the read: not a key any more.
                Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let keys = found.len();
        let mut index = self.index();
        // The token restarted meanwhile (a new epoch): what was read may name other objects now.
        if index.epoch != epoch {
            return Ok(keys);
        }
        // Keys made or found by other requests meanwhile stay; the search's view wins where both know
        // one; a key destroyed since the search began does not come back.
        found.retain(|id, _| !index.destroyed.contains(id));
        index.handles.extend(found);
        index.complete = true;
        Ok(keys)
    }

    /// The key index, its handles forgotten first when they were looked up in an older session epoch:
    /// after a restart the token may number its objects anew (a new login of another store on the same
    /// module empties this one's index this way).
    fn index(&self) -> MutexGuard<'_, KeyIndex> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = self.session_epoch.load(Ordering::SeqCst);
        if index.epoch != epoch {
            index.forget_handles();
            index.epoch = epoch;
        }
        index
    }

    /// Keeps a handle looked up in session epoch `epoch`, unless a new epoch began meanwhile.
    fn remember(&self, epoch: u64, id: &KeyId, handle: ObjectHandle) {
        let mut index = self.index();
        if index.epoch == epoch {
            index.handles.insert(id.clone(), handle);
        }
    }

    /// Drops the key's handle from the index: the key was destroyed, or its handle no longer names it.
    fn forget(&self, id: &KeyId) {
        self.index().handles.remove(id);
    }

    /// Signs each digest with the key, in order. ECDSA values come back DER-encoded.
    ///
    /// A handle the token no longer knows (the key was destroyed by another node, or the token renumbered
    /// its objects) is dropped from the index and the key searched for again, once: a key that is gone is
    /// [`HsmError::KeyNotFound`], and nothing is signed with whatever the old handle may name now.
    pub fn sign_digests(
        &self,
        id: &KeyId,
        scheme: SignatureScheme,
        digests: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        // The lookup and every signature run under one read guard of the login lock (see [`KeyStore`]).
        self.with_session(|session| {
            let sign_all = |key| digests.iter().map(|digest| sign_one(session, key, scheme, digest)).collect();
            let key = self.private_key(session, id)?;
            match sign_all(key) {
                Err(HsmError::Pkcs11(CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _))) => {
                    self.forget(id);
                    sign_all(self.private_key(session, id)?)
                }
                signed => signed,
            }
        })
    }

    /// Finds the sealing key by label, generating it on the first start (`may_generate`: no seed is
    /// sealed yet; a new key would leave every sealed seed unreadable, so a missing key with sealed
    /// seeds stops the start instead): AES-256, on the token, sensitive and never extractable, for
    /// encrypt/decrypt only (no wrap, unwrap, sign, derive), not modifiable nor copyable. Its handle is
    /// kept for the process.
    pub fn prepare_seal_key(&self, may_generate: bool) -> Result<(), HsmError> {
        warn_missing_mechanisms(&self.pkcs11, self.slot, SEAL_KEY_LABEL, &SEAL_MECHANISMS);
        // Two servers of one process starting together must not both generate a key.
        let _guard = TOKEN_INIT.lock().unwrap_or_else(|e| e.into_inner());
        self.with_session(|session| {
            let handle = match find_seal_key(session)? {
                Some(handle) => handle,
                None if may_generate => session.generate_key(&Mechanism::AesKeyGen, &seal_key_template())?,
                None => return Err(HsmError::SealKeyNotFound(SEAL_KEY_LABEL)),
            };
            *self.seal_key.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
            Ok(())
        })
    }

    fn seal_key_handle(&self, session: &Session) -> Result<ObjectHandle, HsmError> {
        if let Some(handle) = *self.seal_key.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(handle);
        }
        let handle = find_seal_key(session)?.ok_or(HsmError::SealKeyNotFound(SEAL_KEY_LABEL))?;
        *self.seal_key.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(handle)
    }

    /// Runs one operation with the sealing key, looking the key up again once if its handle went stale.
    fn with_seal_key<T>(&self, op: impl Fn(&Session, ObjectHandle) -> Result<T, HsmError>) -> Result<T, HsmError> {
        self.with_session(|session| {
            let key = self.seal_key_handle(session)?;
            match op(session, key) {
                Err(HsmError::Pkcs11(CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _))) => {
                    *self.seal_key.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    let key = self.seal_key_handle(session)?;
                    op(session, key)
                }
                other => other,
            }
        })
    }

    /// Seals `plaintext` in the HSM with AES-256-GCM under a fresh random 96-bit IV, binding `aad`
    /// (what the value belongs to). Returns `iv || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        let iv = secrets::random_bytes::<SEAL_IV_LEN>();
        let ciphertext = self.with_seal_key(|session, key| {
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, aad, SEAL_TAG_BITS.into())?;
            Ok(session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?)
        })?;
        let mut sealed = iv.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens a value sealed by [`KeyStore::seal`] with the same `aad`. A value that was altered, moved
    /// to another owner (other `aad`) or sealed under another key is [`HsmError::SealBroken`].
    pub fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        if sealed.len() < SEAL_IV_LEN + (SEAL_TAG_BITS as usize / 8) {
            return Err(HsmError::SealBroken);
        }
        let (iv, ciphertext) = sealed.split_at(SEAL_IV_LEN);
        let result = self.with_seal_key(|session, key| {
            let mut iv = iv.to_vec();
            let params = GcmParams::new(&mut iv, aad, SEAL_TAG_BITS.into())?;
            Ok(session.decrypt(&Mechanism::AesGcm(params), key, ciphertext)?)
        });
        match result {
            Ok(plain) => Ok(Zeroizing::new(plain)),
            // What a module answers to a tag that does not verify, from C_Decrypt itself:
            // CKR_ENCRYPTED_DATA_INVALID in the standard; SoftHSM 2.6 answers CKR_GENERAL_ERROR (proven by
            // tests/api/sole_control_hsm.rs). The same codes from any other call are no verdict on the value:
            // Kryoptic, for one, answers C_DecryptInit with CKR_GENERAL_ERROR when the token forgot the
            // login, and calling that a broken seal would send the person to reset a sound authenticator.
            Err(HsmError::Pkcs11(CkError::Pkcs11(
                RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange | RvError::GeneralError,
                Function::Decrypt,
            ))) => Err(HsmError::SealBroken),
            Err(e) => Err(e),
        }
    }
}

/// The private-key attributes of a signing key: it signs with its kind's mechanisms and nothing else.
fn signing_key_attributes(kind: KeyKind) -> Vec<Attribute> {
    vec![
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::SignRecover(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::AllowedMechanisms(allowed_mechanisms(kind)),
    ]
}

/// The mechanisms `sign_one` calls for a key of this kind: RSA keys sign with CKM_RSA_PKCS (DigestInfo
/// built in software) and CKM_RSA_PKCS_PSS (digest signed as given); EC keys with CKM_ECDSA.
pub fn allowed_mechanisms(kind: KeyKind) -> Vec<MechanismType> {
    if kind.is_rsa() {
        vec![MechanismType::RSA_PKCS, MechanismType::RSA_PKCS_PSS]
    } else {
        vec![MechanismType::ECDSA]
    }
}

fn seal_key_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(SEAL_KEY_LABEL.as_bytes().to_vec()),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
        Attribute::Copyable(false),
        Attribute::AllowedMechanisms(vec![MechanismType::AES_GCM]),
    ]
}

fn find_seal_key(session: &Session) -> Result<Option<ObjectHandle>, HsmError> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(SEAL_KEY_LABEL.as_bytes().to_vec()),
    ];
    Ok(session.find_objects(&template)?.first().copied())
}

fn sign_one(session: &Session, key: ObjectHandle, scheme: SignatureScheme, digest: &[u8]) -> Result<Vec<u8>, HsmError> {
    match scheme {
        SignatureScheme::RsaPkcs1(hash) => {
            // CKM_RSA_PKCS only pads: the DigestInfo is ours to build.
            let mut digest_info = hash.digest_info_prefix().to_vec();
            digest_info.extend_from_slice(digest);
            Ok(session.sign(&Mechanism::RsaPkcs, key, &digest_info)?)
        }
        SignatureScheme::RsaPss { hash, salt_len } => {
            let (hash_alg, mgf) = match hash {
                HashAlgorithm::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
                HashAlgorithm::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
                HashAlgorithm::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
            };
            let params = PkcsPssParams { hash_alg, mgf, s_len: u64::from(salt_len).into() };
            Ok(session.sign(&Mechanism::RsaPkcsPss(params), key, digest)?)
        }
        SignatureScheme::Ecdsa(_) => {
            let raw = session.sign(&Mechanism::Ecdsa, key, digest)?;
            ecdsa_raw_to_der(&raw).ok_or_else(|| HsmError::BadKeyMaterial("ECDSA signature of odd length".into()))
        }
    }
}

fn curve_params(kind: KeyKind) -> Result<Vec<u8>, HsmError> {
    let curve = public_key::curve(kind).ok_or_else(|| HsmError::BadKeyMaterial(format!("{kind} has no curve")))?;
    curve.to_der().map_err(|e| HsmError::BadKeyMaterial(e.to_string()))
}

fn read_public_key(session: &Session, handle: ObjectHandle, kind: KeyKind) -> Result<Vec<u8>, HsmError> {
    let bad = |e: der::Error| HsmError::BadKeyMaterial(e.to_string());
    if kind.is_rsa() {
        let attrs = session.get_attributes(handle, &[AttributeType::Modulus, AttributeType::PublicExponent])?;
        let (mut n, mut e) = (Vec::new(), Vec::new());
        for attr in attrs {
            match attr {
                Attribute::Modulus(v) => n = v,
                Attribute::PublicExponent(v) => e = v,
                _ => {}
            }
        }
        public_key::rsa_spki(&n, &e).map_err(bad)
    } else {
        let attrs = session.get_attributes(handle, &[AttributeType::EcPoint])?;
        let point = attrs
            .into_iter()
            .find_map(|a| if let Attribute::EcPoint(p) = a { Some(p) } else { None })
            .ok_or_else(|| HsmError::BadKeyMaterial("no EC point".into()))?;
        let curve = public_key::curve(kind).ok_or_else(|| HsmError::BadKeyMaterial(format!("{kind} has no curve")))?;
        public_key::ec_spki(curve, &point).map_err(bad)
    }
}

/// What rssp calls on every token it keeps keys on (subscribers' and CA), and what for.
const SIGNING_MECHANISMS: [(MechanismType, &str); 5] = [
    (MechanismType::RSA_PKCS_KEY_PAIR_GEN, "RSA key generation"),
    (MechanismType::ECC_KEY_PAIR_GEN, "EC key generation"),
    (MechanismType::RSA_PKCS, "RSA PKCS#1 v1.5 signatures"),
    (MechanismType::RSA_PKCS_PSS, "RSASSA-PSS signatures"),
    (MechanismType::ECDSA, "ECDSA signatures"),
];

/// What the subscribers' token needs besides, for the key that seals TOTP seeds.
const SEAL_MECHANISMS: [(MechanismType, &str); 2] =
    [(MechanismType::AES_KEY_GEN, "the TOTP seal key"), (MechanismType::AES_GCM, "sealing TOTP seeds")];

/// The needed mechanisms a token does not support (`supports` answers for one), named for an operator.
fn missing_mechanisms(
    needed: &[(MechanismType, &str)],
    mut supports: impl FnMut(MechanismType) -> bool,
) -> Vec<String> {
    needed.iter().filter(|(m, _)| !supports(*m)).map(|(m, what)| format!("{m} ({what})")).collect()
}

/// Says at start which mechanisms a token lacks, so that an HSM that cannot serve rssp is named before
/// the first request fails. A warning, not a refusal: a module may under-report, and the operation
/// itself still answers for what the token really does. Each needed mechanism is asked about by itself
/// (C_GetMechanismInfo) rather than read from the token's whole list, whose vendor and unknown types
/// the PKCS#11 crate logs an error for, one line each, at every start.
fn warn_missing_mechanisms(pkcs11: &Pkcs11, slot: Slot, token: &str, needed: &[(MechanismType, &str)]) {
    let mut unanswered = None;
    let missing = missing_mechanisms(needed, |mechanism| match pkcs11.get_mechanism_info(slot, mechanism) {
        Ok(_) => true,
        Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => false,
        // Not a "no": counted as present, and said once below.
        Err(e) => {
            unanswered.get_or_insert(e);
            true
        }
    });
    if !missing.is_empty() {
        tracing::warn!(token, missing = %missing.join(", "), "the HSM token does not support mechanisms rssp uses");
    }
    if let Some(e) = unanswered {
        tracing::warn!(token, error = %e, "the HSM token's mechanisms cannot be checked");
    }
}

/// Errors a token answers when it forgot the login: said outright, private objects gone from view, or
/// (Kryoptic, whose key store is locked while logged out) a general error when a key is used.
fn may_mean_logged_out(e: &HsmError) -> bool {
    matches!(
        e,
        HsmError::KeyNotFound(_)
            | HsmError::SealKeyNotFound(_)
            | HsmError::Pkcs11(CkError::Pkcs11(
                RvError::UserNotLoggedIn
                    | RvError::KeyHandleInvalid
                    | RvError::ObjectHandleInvalid
                    | RvError::GeneralError,
                _
            ))
    )
}

/// How a session died (either way it is let go, never closed: see [`CheckedOut::discard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionDeath {
    /// The token closed it (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED): the handle is no longer its.
    Closed,
    /// The device behind it failed or went away: a network HSM that lost its connection or restarted.
    DeviceFailed,
}

/// Whether an error leaves the session it came from unusable, and how.
fn session_death(e: &HsmError) -> Option<SessionDeath> {
    match e {
        HsmError::Pkcs11(CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _)) => {
            Some(SessionDeath::Closed)
        }
        HsmError::Pkcs11(CkError::Pkcs11(
            RvError::DeviceError | RvError::DeviceRemoved | RvError::TokenNotPresent | RvError::TokenNotRecognized,
            _,
        )) => Some(SessionDeath::DeviceFailed),
        _ => None,
    }
}

/// What C_Login answers when the PIN itself is refused, as opposed to a token that is busy or gone:
/// another try with the same PIN could only count against the token's retries.
fn pin_refused(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::PinIncorrect
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::UserPinNotInitialized
    )
}

fn is_logged_in(session: &Session) -> Result<bool, HsmError> {
    Ok(matches!(session.get_session_info()?.session_state(), SessionState::RwUser | SessionState::RoUser))
}

/// Whether a login was new to the token, or the token already had this application logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    /// C_Login succeeded: the application was logged out until now, so its handles may have changed.
    New,
    /// CKR_USER_ALREADY_LOGGED_IN: the application's login went on, and its handles with it.
    Kept,
}

/// A new R/W session on the slot, logged in as the user.
fn open_logged_in(pkcs11: &Pkcs11, slot: Slot, pin: &AuthPin) -> Result<(Session, Login), HsmError> {
    let session = pkcs11.open_rw_session(slot)?;
    let login = login_user(&session, pin)?;
    Ok((session, login))
}

/// Logs the user in. The login belongs to the application, not the session: once one session of this
/// process logged in, the token answers the others CKR_USER_ALREADY_LOGGED_IN, which is success here.
fn login_user(session: &Session, pin: &AuthPin) -> Result<Login, HsmError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => Ok(Login::New),
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(Login::Kept),
        Err(e) => Err(e.into()),
    }
}

fn find_token(pkcs11: &Pkcs11, label: &str) -> Result<Option<Slot>, HsmError> {
    for slot in pkcs11.get_slots_with_token()? {
        let info = pkcs11.get_token_info(slot)?;
        if info.token_initialized() && info.label().trim_end() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// Initialises a token in the first free slot and sets its user PIN. SoftHSM then moves the token to
/// a new slot id, so it is looked up again by label.
fn init_token(pkcs11: &Pkcs11, label: &str, so_pin: &str, user_pin: &AuthPin) -> Result<Slot, HsmError> {
    let free = pkcs11
        .get_slots_with_token()?
        .into_iter()
        .find(|slot| pkcs11.get_token_info(*slot).map(|i| !i.token_initialized()).unwrap_or(false))
        .ok_or_else(|| HsmError::TokenNotFound(format!("{label} (and no free slot to create it in)")))?;
    pkcs11.init_token(free, &AuthPin::new(so_pin.into()), label)?;
    let slot = find_token(pkcs11, label)?.ok_or_else(|| HsmError::TokenNotFound(label.to_string()))?;
    init_user_pin(pkcs11, slot, so_pin, user_pin)?;
    Ok(slot)
}

/// Sets the user PIN of a token as its security officer.
fn init_user_pin(pkcs11: &Pkcs11, slot: Slot, so_pin: &str, user_pin: &AuthPin) -> Result<(), HsmError> {
    let session = pkcs11.open_rw_session(slot)?;
    session.login(UserType::So, Some(&AuthPin::new(so_pin.into())))?;
    let result = session.init_pin(user_pin);
    // Log out whatever happened: the next attempt logs in as SO again.
    let _ = session.logout();
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::{ApiError, Dialect};
    use crate::service::ServiceError;

    const TEST_PIN: &str = "4321-pool";
    const TEST_SO_PIN: &str = "8765-pool";

    /// A SoftHSM module of this test's own: a copy of the library, which the dynamic loader loads as a
    /// separate instance, so that a test may restart it (C_Finalize, C_Initialize) without touching any
    /// other test's tokens or sessions. Its tokens live in a temporary directory.
    fn private_softhsm(name: &str) -> PathBuf {
        let dir = crate::hsm::test_support::softhsm_dir();
        let module = dir.join(format!("libsofthsm2-{name}.so"));
        std::fs::copy(crate::config::SOFTHSM_MODULE, &module).unwrap();
        module
    }

    /// A store on a new token of a private module, with a P-256 key to sign with.
    /// The caller holds `test_support::exclusive()`.
    fn store_with_key(name: &str, sessions: usize) -> (KeyStore, KeyId) {
        let module = private_softhsm(name);
        // SoftHSM numbers a token's slot after its serial only when it reads the token at C_Initialize (a
        // token made in this run keeps the number of the free slot it was made in). So the token is
        // made, then the module restarted once: from then on a restart keeps the slot, as a network
        // HSM's restart does.
        drop(KeyStore::open(&module, name, &TEST_PIN.into(), 1, Some(TEST_SO_PIN)).unwrap());
        restart_hsm(&super::module(&module).unwrap().pkcs11);
        // Loaded: the copy on disk is no longer needed.
        std::fs::remove_file(&module).unwrap();
        let store = KeyStore::open(&module, name, &TEST_PIN.into(), sessions, Some(TEST_SO_PIN)).unwrap();
        let key = store.generate(KeyKind::EcP256, name).unwrap();
        (store, key.id)
    }

    fn sign(store: &KeyStore, key: &KeyId) -> Result<Vec<Vec<u8>>, HsmError> {
        store.sign_digests(key, SignatureScheme::Ecdsa(HashAlgorithm::Sha256), &[vec![7; 32]])
    }

    /// What a restart of the HSM does to rssp's sessions: the module forgets every session and the login
    /// (C_Finalize), and comes back (C_Initialize) with the tokens as they are on disk.
    fn restart_hsm(pkcs11: &Pkcs11) {
        pkcs11.clone().finalize().unwrap();
        pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    }

    #[test]
    fn a_request_waits_for_a_session_at_most_the_session_wait_and_then_gets_503() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (store, key) = store_with_key("pool-wait", 1);
        let wait = Duration::from_millis(300);
        let store = store.with_session_wait(wait);
        let held = store.check_out().unwrap();
        let started = Instant::now();
        let err = sign(&store, &key).expect_err("no session is free");
        assert!(matches!(err, HsmError::Busy), "{err}");
        assert!(started.elapsed() >= wait, "gave up after {:?}, before the wait", started.elapsed());
        // To the client: 503 with Retry-After, not a 500.
        let service = ServiceError::from(err);
        assert!(matches!(service, ServiceError::Unavailable), "{service:?}");
        let api = ApiError::from_service(service, Dialect::V1);
        assert_eq!(api.status.as_u16(), 503);
        assert_eq!(api.retry_after, Some(1));
        // Nothing was lost while it waited: the session held comes back and serves the next request.
        drop(held);
        assert_eq!(sign(&store, &key).unwrap().len(), 1);

        // A session put back during the wait goes to the request that waits for it.
        let store = store.with_session_wait(Duration::from_secs(30));
        let held = store.check_out().unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| sign(&store, &key));
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
            assert_eq!(waiter.join().unwrap().unwrap().len(), 1);
        });
    }

    #[test]
    fn sessions_the_hsm_closed_are_replaced_and_the_next_signature_succeeds() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (store, key) = store_with_key("pool-restart", 2);
        assert_eq!(sign(&store, &key).unwrap().len(), 1);

        // Both pooled sessions die behind the pool's back. Each signature that draws one gets a new
        // logged-in session in its place and succeeds: the first while the other dead one is held aside,
        // the second with that one.
        restart_hsm(&store.pkcs11);
        let held = store.check_out().unwrap();
        assert_eq!(sign(&store, &key).unwrap().len(), 1);
        drop(held);
        assert_eq!(sign(&store, &key).unwrap().len(), 1);
        // No dead session is left in the pool.
        let pool = store.pool.lock().unwrap();
        assert_eq!((pool.open, pool.idle.len()), (2, 2));
        for (session, _) in &pool.idle {
            assert!(is_logged_in(session).unwrap(), "a pooled session is not logged in");
        }
    }

    #[test]
    fn a_dead_session_found_by_the_readiness_check_leaves_the_pool_and_a_new_one_takes_its_place() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (store, key) = store_with_key("pool-check", 1);
        let logins = store.relogin_attempts();
        restart_hsm(&store.pkcs11);
        // The token answers, so the node is ready; the dead session is not put back.
        store.check().unwrap();
        {
            let pool = store.pool.lock().unwrap();
            assert_eq!((pool.open, pool.idle.len()), (0, 0), "the dead session went back to the pool");
        }
        // The next signature opens a new session in its place, logged in once.
        assert_eq!(sign(&store, &key).unwrap().len(), 1);
        assert_eq!(store.relogin_attempts(), logins + 1);
        let pool = store.pool.lock().unwrap();
        assert_eq!((pool.open, pool.idle.len()), (1, 1));
    }

    /// Another store on the token of `store_with_key(name, ..)`, through a copy of the library of its
    /// own: its own handles and its own login, as another node (or this one after a restart) has.
    fn second_store(name: &str) -> KeyStore {
        let module = private_softhsm(&format!("{name}-second"));
        let store = KeyStore::open(&module, name, &TEST_PIN.into(), 1, None).unwrap();
        std::fs::remove_file(&module).unwrap();
        store
    }

    #[test]
    fn keys_on_the_token_are_indexed_when_a_store_opens_and_sign_without_a_search() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (a, first) = store_with_key("index-open", 1);
        let mut keys = vec![first];
        for i in 0..4 {
            keys.push(a.generate(KeyKind::EcP256, &format!("index-open-{i}")).unwrap().id);
        }
        // Keys this store made are known without a search.
        for key in &keys {
            assert_eq!(sign(&a, key).unwrap().len(), 1);
        }
        assert_eq!(a.key_searches(), KeySearches { all: 1, one: 0 });

        // A store that opens on the token (a restart, another node) reads every key once, at its start.
        let b = second_store("index-open");
        assert_eq!(b.key_searches(), KeySearches { all: 1, one: 0 });
        for key in &keys {
            assert_eq!(sign(&b, key).unwrap().len(), 1);
        }
        assert_eq!(b.key_searches(), KeySearches { all: 1, one: 0 }, "a known key was searched for");

        // After a new login the handles are forgotten; the first lookup reads every key again, once.
        restart_hsm(&b.pkcs11);
        for key in &keys {
            assert_eq!(sign(&b, key).unwrap().len(), 1);
        }
        assert_eq!(b.key_searches(), KeySearches { all: 2, one: 0 });
    }

    #[test]
    fn after_the_token_restarts_every_key_is_read_again_once_not_once_per_session() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (store, first) = store_with_key("index-restart", 3);
        let mut keys = vec![first];
        for i in 0..5 {
            keys.push(store.generate(KeyKind::EcP256, &format!("index-restart-{i}")).unwrap().id);
        }
        // Every session dies. Each of the three is replaced when it is next used: the first replacement
        // is a new login (the index is emptied and read again), the others find the login kept.
        restart_hsm(&store.pkcs11);
        let (held_a, held_b) = (store.check_out().unwrap(), store.check_out().unwrap());
        assert_eq!(sign(&store, &keys[0]).unwrap().len(), 1);
        drop(held_a);
        assert_eq!(sign(&store, &keys[1]).unwrap().len(), 1);
        drop(held_b);
        for key in &keys {
            assert_eq!(sign(&store, key).unwrap().len(), 1);
        }
        // Every key was read once at the start and once after the restart, never once per session.
        assert_eq!(store.key_searches(), KeySearches { all: 2, one: 0 });
        assert_eq!(store.relogin_attempts(), 3, "three sessions replaced");
        let pool = store.pool.lock().unwrap();
        assert_eq!((pool.open, pool.idle.len()), (3, 3));
    }

    #[test]
    fn a_session_from_before_the_token_restarted_is_never_used_again() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (store, key) = store_with_key("pool-epoch-held", 2);
        let held = store.check_out().unwrap();
        restart_hsm(&store.pkcs11);
        // The other session is found dead and replaced: a new login, so a new epoch.
        assert_eq!(sign(&store, &key).unwrap().len(), 1);
        // The held one (its number may be the replacement's now) is answered as closed, unused.
        let ran = std::sync::atomic::AtomicBool::new(false);
        let (_, answer) = store
            .attempt(&held, &|_| {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .unwrap();
        assert!(!ran.load(Ordering::SeqCst), "a session from before the restart was used");
        assert!(
            matches!(answer, Err(HsmError::Pkcs11(CkError::Pkcs11(RvError::SessionHandleInvalid, _)))),
            "{answer:?}"
        );
        drop(held);
        // Put back, it is let go at its next use and replaced; signing goes on.
        assert_eq!(sign(&store, &key).unwrap().len(), 1);
        assert_eq!(sign(&store, &key).unwrap().len(), 1);
    }

    #[test]
    fn after_the_token_restarts_no_two_requests_share_a_session_whose_number_it_gave_out_again() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (store, first) = store_with_key("pool-epoch", 3);
        let mut keys = vec![first];
        for i in 0..5 {
            keys.push(store.generate(KeyKind::EcP256, &format!("pool-epoch-{i}")).unwrap().id);
        }
        // The restarted token numbers its new sessions from 1 again: the first replacement gets the
        // number of a dead session another thread still holds. That one must not be used (two threads
        // on one session fail with CKR_OPERATION_ACTIVE, or worse), only let go and replaced.
        for round in 0..5 {
            restart_hsm(&store.pkcs11);
            std::thread::scope(|scope| {
                for chunk in keys.chunks(2) {
                    let store = &store;
                    scope.spawn(move || {
                        for key in chunk {
                            let signed = sign(store, key);
                            assert!(signed.is_ok(), "round {round}: {signed:?}");
                        }
                    });
                }
            });
        }
        let pool = store.pool.lock().unwrap();
        assert_eq!(pool.open, pool.idle.len());
        assert!(pool.open <= 3);
    }

    #[test]
    fn a_key_made_on_another_node_signs_at_once_and_a_destroyed_one_never_signs_through_its_old_handle() {
        let _hsm = crate::hsm::test_support::exclusive();
        let (a, key) = store_with_key("index-nodes", 1);
        let b = second_store("index-nodes");

        // Made on B after A's start: A searches for it once, and knows it from then on.
        let made_on_b = b.generate(KeyKind::EcP256, "index-nodes-b").unwrap().id;
        assert_eq!(sign(&a, &made_on_b).unwrap().len(), 1);
        assert_eq!(sign(&a, &made_on_b).unwrap().len(), 1);
        assert_eq!(a.key_searches().one, 1);

        // A signed with `key`, so it holds its handle. B destroys the key; A's next signature finds the
        // handle dead, drops it, searches, and refuses: the key is gone.
        assert_eq!(sign(&a, &key).unwrap().len(), 1);
        assert!(b.destroy(&key).unwrap());
        let err = sign(&a, &key).expect_err("the key was destroyed");
        assert!(matches!(err, HsmError::KeyNotFound(_)), "{err}");
        assert!(!a.index.lock().unwrap().handles.contains_key(&key), "the dead handle stayed in the index");
        // Keys made afterwards take no part in it: the destroyed key stays refused, the others sign.
        let newer = b.generate(KeyKind::EcP256, "index-nodes-newer").unwrap().id;
        assert!(matches!(sign(&a, &key), Err(HsmError::KeyNotFound(_))));
        assert_eq!(sign(&a, &newer).unwrap().len(), 1);
        assert_eq!(sign(&a, &made_on_b).unwrap().len(), 1);
    }

    #[test]
    fn failed_devices_and_closed_sessions_end_a_session_and_nothing_else_does() {
        let error = |rv| HsmError::Pkcs11(CkError::Pkcs11(rv, Function::Sign));
        assert_eq!(session_death(&error(RvError::SessionHandleInvalid)), Some(SessionDeath::Closed));
        assert_eq!(session_death(&error(RvError::SessionClosed)), Some(SessionDeath::Closed));
        assert_eq!(session_death(&error(RvError::DeviceError)), Some(SessionDeath::DeviceFailed));
        assert_eq!(session_death(&error(RvError::DeviceRemoved)), Some(SessionDeath::DeviceFailed));
        assert_eq!(session_death(&error(RvError::TokenNotPresent)), Some(SessionDeath::DeviceFailed));
        // A login the token forgot is mended on the same session; a key's refusal is no fault of it.
        assert_eq!(session_death(&error(RvError::UserNotLoggedIn)), None);
        assert_eq!(session_death(&error(RvError::KeyFunctionNotPermitted)), None);
        assert_eq!(session_death(&HsmError::KeyNotFound("00".into())), None);
    }

    #[test]
    fn missing_mechanisms_are_named_with_what_they_are_for() {
        let all: Vec<MechanismType> = SIGNING_MECHANISMS.iter().chain(&SEAL_MECHANISMS).map(|(m, _)| *m).collect();
        let supported_by = |list: Vec<MechanismType>| move |m: MechanismType| list.contains(&m);
        assert!(missing_mechanisms(&SIGNING_MECHANISMS, supported_by(all.clone())).is_empty());
        assert!(missing_mechanisms(&SEAL_MECHANISMS, supported_by(all.clone())).is_empty());
        // A YubiHSM 2, by its manual: no AES-GCM.
        let no_gcm: Vec<MechanismType> = all.iter().copied().filter(|m| *m != MechanismType::AES_GCM).collect();
        assert_eq!(
            missing_mechanisms(&SEAL_MECHANISMS, supported_by(no_gcm.clone())),
            ["CKM_AES_GCM (sealing TOTP seeds)"]
        );
        assert!(missing_mechanisms(&SIGNING_MECHANISMS, supported_by(no_gcm)).is_empty());
        assert_eq!(missing_mechanisms(&SIGNING_MECHANISMS, |_| false).len(), SIGNING_MECHANISMS.len());
        // Only the needed mechanisms are asked about, each once.
        let mut asked = Vec::new();
        missing_mechanisms(&SEAL_MECHANISMS, |m| {
            asked.push(m);
            true
        });
        assert_eq!(asked, [MechanismType::AES_KEY_GEN, MechanismType::AES_GCM]);
    }
}
