//! The embedded default: a SoftHSM token that rssp keeps under its data directory.

use std::path::Path;

use secrecy::SecretString;

use crate::config::Config;
use crate::domain::secrets;

/// The SoftHSM configuration of the embedded default: `hsm-config/softhsm2.conf.template`, compiled in
/// (the repository's file is the one truth, and the binary never reads the repository at run time).
const SOFTHSM_CONF_TEMPLATE: &str = include_str!("../../hsm-config/softhsm2.conf.template");

/// The template with its token directory filled in.
pub fn softhsm_conf(token_dir: &Path) -> String {
    SOFTHSM_CONF_TEMPLATE.replace("{tokendir}", &token_dir.display().to_string())
}

/// Prepares the embedded SoftHSM set-up before the module is loaded: writes a `softhsm2.conf` whose
/// token directory is under the data directory (unless `SOFTHSM2_CONF` is already set), and, when no
/// PIN is configured, creates a random user PIN kept in the data directory.
///
/// Must run before any thread is started: it sets `SOFTHSM2_CONF` for this process.
pub fn prepare_embedded_softhsm(config: &mut Config) -> std::io::Result<()> {
    if !config.embedded_softhsm() {
        return Ok(());
    }
    crate::data_dir::prepare(&config.data_dir)?;
    let hsm_dir = config.data_dir.join("hsm");
    crate::data_dir::create_private_dir(&hsm_dir)?;
    let hsm_dir = std::fs::canonicalize(&hsm_dir)?;
    if std::env::var_os("SOFTHSM2_CONF").is_none() {
        let tokens = hsm_dir.join("tokens");
        // SoftHSM creates its token directories 0700 and object files 0600 inside this one.
        crate::data_dir::create_private_dir(&tokens)?;
        let conf = hsm_dir.join("softhsm2.conf");
        crate::data_dir::write_private(&conf, softhsm_conf(&tokens).as_bytes())?;
        // Single-threaded at this point (see the doc comment), so changing the environment is safe.
        std::env::set_var("SOFTHSM2_CONF", &conf);
    }
    if config.hsm.pin.is_none() {
        config.hsm.pin = Some(read_or_create_secret(&hsm_dir.join("user.pin"))?);
    }
    Ok(())
}

/// The security officer PIN of an embedded token rssp initialises itself.
pub(crate) fn embedded_so_pin(data_dir: &Path) -> std::io::Result<SecretString> {
    read_or_create_secret(&data_dir.join("hsm").join("so.pin"))
}

fn read_or_create_secret(path: &Path) -> std::io::Result<SecretString> {
    if let Ok(existing) = std::fs::read_to_string(path).map(zeroize::Zeroizing::new) {
        if !existing.trim().is_empty() {
            return Ok(existing.trim().into());
        }
    }
    if let Some(parent) = path.parent() {
        crate::data_dir::create_private_dir(parent)?;
    }
    let secret = hex::encode(secrets::random_bytes::<16>());
    // Written whole under another name, then renamed: a start that stops half-way leaves either no
    // file or a complete one, never an empty PIN the next start would use.
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    write_private(&partial, &secret)?;
    std::fs::rename(&partial, path)?;
    Ok(secret.into())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_names_the_token_directory_once_and_nothing_else_is_left_to_fill() {
        let conf = softhsm_conf(Path::new("/var/lib/rssp/hsm/tokens"));
        let settings: Vec<&str> =
            conf.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert!(settings.contains(&"directories.tokendir = /var/lib/rssp/hsm/tokens"), "{settings:?}");
        assert!(settings.contains(&"objectstore.backend = file"), "{settings:?}");
        assert!(!conf.contains('{') && !conf.contains('}'), "an unfilled placeholder: {conf}");
        for line in settings {
            assert!(line.split_once(" = ").is_some_and(|(k, v)| !k.is_empty() && !v.is_empty()), "{line:?}");
        }
    }
}
