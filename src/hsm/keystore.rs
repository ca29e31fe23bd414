use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, RwLock};

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
use der::asn1::{BitString, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use crate::domain::algorithms::{ecdsa_raw_to_der, oid};
use crate::domain::{secrets, HashAlgorithm, KeyKind, SignatureScheme};
use crate::metrics::METRICS;

#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("PKCS#11: {0}")]
    Pkcs11(#[from] CkError),
    #[error("no token labelled {0:?} on the PKCS#11 module")]
    TokenNotFound(String),
    #[error("no key with id {0} on the token")]
    KeyNotFound(String),
    #[error("unexpected key material from the HSM: {0}")]
    BadKeyMaterial(String),
    /// A sealed value that does not open: altered, moved to another row, or sealed under another key.
    #[error("a sealed value does not open (altered, moved or sealed by another key)")]
    SealBroken,
    #[error("no sealing key labelled {0:?} on the token, but the database holds seeds sealed with one: restore the HSM token (a new key would make every authenticator unusable)")]
    SealKeyNotFound(&'static str),
    /// The token refused the user PIN when rssp logged in again (wrong, locked or expired PIN). rssp
    /// stops logging in until it restarts, so that it cannot use up the token's PIN retries.
    #[error("the HSM token refused the user PIN; rssp no longer logs in: correct the PIN and restart")]
    LoginRefused,
}

/// Label of the subscriber (signing) keys: `rssp-subscriber-<credential id>`. CA keys carry their own
/// `rssp-ca-*` labels (see [`CaKeyLabel`]), so the two are told apart on the token.
pub const SUBSCRIBER_KEY_LABEL_PREFIX: &str = "rssp-subscriber-";

/// The labels of the CA keys, distinct from every subscriber label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeyLabel {
    Root,
    Issuing,
}

impl CaKeyLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            CaKeyLabel::Root => "rssp-ca-root",
            CaKeyLabel::Issuing => "rssp-ca-issuing",
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
    pub fn random() -> KeyId {
        KeyId(secrets::random_bytes::<16>().to_vec())
    }
    pub fn from_hex(text: &str) -> Option<KeyId> {
        hex::decode(text).ok().filter(|b| !b.is_empty()).map(KeyId)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// A key pair generated in the HSM: its id and its public key as DER SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub id: KeyId,
    pub public_key_der: Vec<u8>,
}

/// The PKCS#11 modules this process initialised, by path.
static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// One PKCS#11 module may be initialised once per process; every key store shares it.
fn module(path: &Path) -> Result<Pkcs11, HsmError> {
    let mut modules = MODULES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = modules.get(path) {
        return Ok(existing.clone());
    }
    let pkcs11 = Pkcs11::new(path)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    modules.insert(path.to_path_buf(), pkcs11.clone());
    Ok(pkcs11)
}

/// Finalizes (`C_Finalize`) every module this process initialised: the last step of a shutdown, once
/// every [`KeyStore`] is dropped (dropping one closes its sessions, and with the last one the token
/// logs out). A network HSM then frees this client's sessions at once instead of when it notices
/// the connection is gone. Returns how many modules were finalized.
pub fn finalize_modules() -> usize {
    let Some(modules) = MODULES.get() else { return 0 };
    let modules: Vec<(PathBuf, Pkcs11)> = modules.lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
    let count = modules.len();
    for (path, pkcs11) in modules {
        if let Err(e) = pkcs11.finalize() {
            tracing::warn!(module = %path.display(), error = %e, "PKCS#11 finalize failed");
        }
    }
    count
}

/// Token initialisation must not race within a process (tests start many servers at once).
static TOKEN_INIT: Mutex<()> = Mutex::new(());

/// What this store knows of its login to the token, behind [`KeyStore::login`].
struct LoginState {
    /// Counts the logins made since the store opened. Each one may change what a handle names.
    generation: u64,
    /// The token refused the PIN (wrong, locked, expired): no login is tried again until a restart.
    refused: bool,
}

/// Why a handle cached by this store always names the object it was looked up for (a token may hand
/// out the same handle numbers to other objects after a logout, and then a stale handle would sign with
/// another subscriber's key):
/// - every operation that looks a handle up, caches it or uses it runs inside [`KeyStore::with_session`],
///   holding the read side of [`KeyStore::login`] from the lookup to the last use;
/// - a new login (after the token forgot it, or with a replacement session) happens only under the write
///   side, which empties the handle caches before logging in. No operation is in flight then, so none
///   can use or cache a handle from before it, and every handle cached afterwards was looked up after it;
/// - rssp logs the user out nowhere else (only the security officer, while a new token is set up), so a
///   logout it did not order this way cannot happen inside the process. A cached handle is therefore used
///   as it is, without reading its `CKA_ID` back: on a network HSM that would be one more round trip on
///   every signature.
pub struct KeyStore {
    pkcs11: Pkcs11,
    slot: Slot,
    /// The user PIN, kept to log in again when the token forgot the login (see [`KeyStore::with_session`]).
    pin: AuthPin,
    /// Idle logged-in sessions. A `Session` is `Send` but not `Sync`: each is used by one thread at a time.
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
    /// Private-key handles by key id, for the current login only (see [`LoginState`]).
    handles: Mutex<HashMap<KeyId, ObjectHandle>>,
    /// The sealing key's handle, once found (see [`KeyStore::prepare_seal_key`]); current login only.
    seal_key: Mutex<Option<ObjectHandle>>,
    /// Read-held by every operation, write-held by a new login: see the comment on this struct.
    login: RwLock<LoginState>,
    /// How often this store called C_Login after it opened (to log in again or with a new session).
    relogin_attempts: AtomicU64,
}

/// A session checked out of the pool; back into it when dropped.
struct CheckedOut<'a> {
    store: &'a KeyStore,
    session: Option<Session>,
}

impl CheckedOut<'_> {
    fn session(&self) -> &Session {
        // Present from check-out until drop; only a replacement swaps it, never leaving it empty.
        self.session.as_ref().expect("present until drop")
    }
}

impl Drop for CheckedOut<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.store.idle.lock().unwrap_or_else(|e| e.into_inner()).push(session);
            self.store.returned.notify_one();
            METRICS.hsm_sessions_in_use.dec();
        }
    }
}

impl KeyStore {
    /// Opens the token labelled `label`, logs in and keeps `sessions` sessions open. With `init_so_pin`,
    /// a missing token is created in a free slot first (the embedded SoftHSM default).
    pub fn open(
        module_path: &Path,
        label: &str,
        pin: &str,
        sessions: usize,
        init_so_pin: Option<&str>,
    ) -> Result<KeyStore, HsmError> {
        let pkcs11 = module(module_path)?;
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
        let pin = AuthPin::new(pin.into());
        let mut idle = Vec::with_capacity(sessions);
        for _ in 0..sessions.max(1) {
            idle.push(open_logged_in(&pkcs11, slot, &pin)?);
        }
        Ok(KeyStore {
            pkcs11,
            slot,
            pin,
            idle: Mutex::new(idle),
            returned: Condvar::new(),
            handles: Mutex::new(HashMap::new()),
            seal_key: Mutex::new(None),
            login: RwLock::new(LoginState { generation: 0, refused: false }),
            relogin_attempts: AtomicU64::new(0),
        })
    }

    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// How often this store called C_Login since it opened (the first logins excepted): an operator's
    /// and the tests' view of whether it keeps trying.
    pub fn relogin_attempts(&self) -> u64 {
        self.relogin_attempts.load(Ordering::SeqCst)
    }

    /// An idle session, waiting for one when all are busy.
    fn check_out(&self) -> CheckedOut<'_> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut waited = false;
        let session = loop {
            if let Some(session) = idle.pop() {
                break session;
            }
            if !waited {
                waited = true;
                METRICS.hsm_session_waits.inc();
            }
            idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
        };
        drop(idle);
        METRICS.hsm_sessions_in_use.inc();
        // The guard puts the session back even if the caller panics.
        CheckedOut { store: self, session: Some(session) }
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
        Ok((login.generation, f(out.session())))
    }

    /// Runs `f` with an idle session, waiting for one when all are busy.
    ///
    /// Sessions live as long as the process, but a token may forget them: a network HSM that logs out idle
    /// applications (Utimaco's `AppTimeout`), restarts, or fails over to another member; another
    /// application of this process calling `C_Logout` (the login is shared by the whole application).
    /// When `f` fails because the session is no longer logged in, the session logs in again and `f` runs
    /// once more; when the session itself is gone, a new logged-in session replaces it. Any other error,
    /// and a second failure, is returned as it is.
    fn with_session<T>(&self, f: impl Fn(&Session) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let mut out = self.check_out();
        let (generation, result) = self.attempt(&out, &f)?;
        match result {
            Err(e) => {
                if self.recover(&mut out, &e, generation)? {
                    self.attempt(&out, &f)?.1
                } else {
                    Err(e)
                }
            }
            ok => ok,
        }
    }

    /// Like [`KeyStore::with_session`], but `f` runs at most once (it makes something that must not be
    /// made twice). A forgotten login or a dead session is mended before, found by asking the session's
    /// state (one cheap call, on a path that is rare and slow anyway).
    fn with_session_once<T>(&self, f: impl Fn(&Session) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let mut out = self.check_out();
        let (generation, state) = self.attempt(&out, &|session| {
            if is_logged_in(session)? {
                Ok(())
            } else {
                Err(HsmError::Pkcs11(CkError::Pkcs11(RvError::UserNotLoggedIn, Function::GetSessionInfo)))
            }
        })?;
        if let Err(e) = state {
            if !self.recover(&mut out, &e, generation)? {
                return Err(e);
            }
        }
        self.attempt(&out, &f)?.1
    }

    /// After `error` from an operation that ran in login `generation`: mends the session when the error
    /// says it lost its login or died, and tells whether the operation may run again. False: the error
    /// stands as it is.
    fn recover(&self, out: &mut CheckedOut<'_>, error: &HsmError, generation: u64) -> Result<bool, HsmError> {
        match error {
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
                self.new_login(&mut login, || login_user(out.session(), &self.pin))?;
                Ok(true)
            }
            HsmError::Pkcs11(CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _)) => {
                tracing::warn!(slot = %self.slot, "an HSM session was closed by the token; opening a new one");
                let mut login = self.login.write().unwrap_or_else(|e| e.into_inner());
                if login.refused {
                    return Err(HsmError::LoginRefused);
                }
                // A closed session may mean a restarted token, which logs in anew with the new session.
                // Dropping the dead session tries C_CloseSession once more, which the token refuses harmlessly.
                self.new_login(&mut login, || {
                    out.session = Some(open_logged_in(&self.pkcs11, self.slot, &self.pin)?);
                    Ok(())
                })?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Logs in with `log_in`, holding the write side of the login lock (`login`): first empties the
    /// handle caches, since a handle is only promised to stay the same while the object stays accessible
    /// and after a logout the token may hand out others. A PIN the token refuses is not tried again:
    /// repeating it would use up the token's retries and lock the user out of the HSM for every node.
    fn new_login(&self, login: &mut LoginState, log_in: impl FnOnce() -> Result<(), HsmError>) -> Result<(), HsmError> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.seal_key.lock().unwrap_or_else(|e| e.into_inner()) = None;
        login.generation += 1;
        self.relogin_attempts.fetch_add(1, Ordering::SeqCst);
        match log_in() {
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
            other => other,
        }
    }

    /// Readiness, cheap and never in the way of signing: an idle session, if one is idle right now, is
    /// asked its state (C_GetSessionInfo); when every session is busy, the token is asked its information
    /// (C_GetTokenInfo, no session needed). Either fails when the module or the HSM behind it is gone. A
    /// token that refused the PIN is [`HsmError::LoginRefused`] without asking it.
    pub fn check(&self) -> Result<(), HsmError> {
        if self.login.read().unwrap_or_else(|e| e.into_inner()).refused {
            return Err(HsmError::LoginRefused);
        }
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(session) => {
                METRICS.hsm_sessions_in_use.inc();
                let out = CheckedOut { store: self, session: Some(session) };
                match out.session().get_session_info() {
                    Ok(_) => {}
                    // A session the token closed is replaced by the next request that draws it (see
                    // [`KeyStore::recover`]): no verdict on the node, so the token itself is asked.
                    Err(CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _)) => {
                        self.pkcs11.get_token_info(self.slot)?;
                    }
                    Err(e) => return Err(e.into()),
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

    /// Generates a CA key pair on the token under its own `rssp-ca-*` label.
    pub fn generate_ca(&self, kind: KeyKind, label: CaKeyLabel) -> Result<GeneratedKey, HsmError> {
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
            let (public_handle, private_handle) = session.generate_key_pair(&mechanism, &public, &private)?;
            let public_key_der = read_public_key(session, public_handle, kind)?;
            self.handles.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), private_handle);
            Ok(public_key_der)
        });
        match generated {
            Ok(public_key_der) => Ok(GeneratedKey { id, public_key_der }),
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
            self.handles.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
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
    fn private_key(&self, session: &Session, id: &KeyId) -> Result<ObjectHandle, HsmError> {
        let cached = self.handles.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied();
        if let Some(handle) = cached {
            return Ok(handle);
        }
        let template = [Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(id.0.clone())];
        let handle = *session.find_objects(&template)?.first().ok_or_else(|| HsmError::KeyNotFound(id.to_hex()))?;
        self.handles.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), handle);
        Ok(handle)
    }

    /// Signs each digest with the key, in order. ECDSA values come back DER-encoded.
    pub fn sign_digests(
        &self,
        id: &KeyId,
        scheme: SignatureScheme,
        digests: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        // The lookup and every signature run under one read guard of the login lock (see [`KeyStore`]).
        self.with_session(|session| {
            let key = self.private_key(session, id)?;
            digests.iter().map(|digest| sign_one(session, key, scheme, digest)).collect()
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
    let curve = kind.curve_oid().ok_or_else(|| HsmError::BadKeyMaterial(format!("{kind} has no curve")))?;
    let oid = ObjectIdentifier::new(curve).map_err(|e| HsmError::BadKeyMaterial(e.to_string()))?;
    oid.to_der().map_err(|e| HsmError::BadKeyMaterial(e.to_string()))
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn read_public_key(session: &Session, handle: ObjectHandle, kind: KeyKind) -> Result<Vec<u8>, HsmError> {
    let bad = |e: der::Error| HsmError::BadKeyMaterial(e.to_string());
    let (algorithm, key_bits) = if kind.is_rsa() {
        let attrs = session.get_attributes(handle, &[AttributeType::Modulus, AttributeType::PublicExponent])?;
        let (mut n, mut e) = (Vec::new(), Vec::new());
        for attr in attrs {
            match attr {
                Attribute::Modulus(v) => n = v,
                Attribute::PublicExponent(v) => e = v,
                _ => {}
            }
        }
        let key =
            RsaPublicKey { modulus: UintRef::new(&n).map_err(bad)?, public_exponent: UintRef::new(&e).map_err(bad)? };
        let algorithm = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid::RSA_ENCRYPTION),
            parameters: Some(der::asn1::Null.into()),
        };
        (algorithm, key.to_der().map_err(bad)?)
    } else {
        let attrs = session.get_attributes(handle, &[AttributeType::EcPoint])?;
        let point = attrs
            .into_iter()
            .find_map(|a| if let Attribute::EcPoint(p) = a { Some(p) } else { None })
            .ok_or_else(|| HsmError::BadKeyMaterial("no EC point".into()))?;
        // PKCS#11 wraps the point in a DER OCTET STRING; some HSMs return it bare.
        let point = match <&OctetStringRef>::from_der(&point) {
            Ok(inner) if inner.as_bytes().first() == Some(&0x04) => inner.as_bytes().to_vec(),
            _ => point,
        };
        let curve = ObjectIdentifier::new(kind.curve_oid().unwrap_or_default())
            .map_err(|e| HsmError::BadKeyMaterial(e.to_string()))?;
        let algorithm = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"),
            parameters: Some(der::Any::encode_from(&curve).map_err(bad)?),
        };
        (algorithm, point)
    };
    let spki =
        SubjectPublicKeyInfoOwned { algorithm, subject_public_key: BitString::from_bytes(&key_bits).map_err(bad)? };
    spki.to_der().map_err(bad)
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

/// A new R/W session on the slot, logged in as the user.
fn open_logged_in(pkcs11: &Pkcs11, slot: Slot, pin: &AuthPin) -> Result<Session, HsmError> {
    let session = pkcs11.open_rw_session(slot)?;
    login_user(&session, pin)?;
    Ok(session)
}

/// Logs the user in. The login belongs to the application, not the session: once one session of this
/// process logged in, the token answers the others CKR_USER_ALREADY_LOGGED_IN, which is success here.
fn login_user(session: &Session, pin: &AuthPin) -> Result<(), HsmError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
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
fn init_token(pkcs11: &Pkcs11, label: &str, so_pin: &str, user_pin: &str) -> Result<Slot, HsmError> {
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
fn init_user_pin(pkcs11: &Pkcs11, slot: Slot, so_pin: &str, user_pin: &str) -> Result<(), HsmError> {
    let session = pkcs11.open_rw_session(slot)?;
    session.login(UserType::So, Some(&AuthPin::new(so_pin.into())))?;
    let result = session.init_pin(&AuthPin::new(user_pin.into()));
    // Log out whatever happened: the next attempt logs in as SO again.
    let _ = session.logout();
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
