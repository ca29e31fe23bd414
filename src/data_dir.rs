//! The data directory holds everything local and secret: the SQLite database, the embedded SoftHSM
//! token and its PINs, the development secrets. It is kept private to the account rssp runs as:
//! directories 0700, files 0600, set explicitly on creation (whatever the umask) and corrected at
//! start for an installation made before.

use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as 0700, or brings an existing one to 0700. Warns when the
/// directory belongs to another account than the one rssp runs as.
pub fn prepare(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    #[cfg(unix)]
    {
        let meta = std::fs::metadata(dir)?;
        // On Linux /proc/self belongs to the process's effective user; without it, skip the check.
        if let Ok(me) = std::fs::metadata("/proc/self") {
            if meta.uid() != me.uid() {
                tracing::warn!(
                    dir = %dir.display(),
                    owner = meta.uid(),
                    running_as = me.uid(),
                    "the data directory belongs to another account; it should belong to the account rssp runs as"
                );
            }
        }
    }
    Ok(())
}

/// Creates a directory (and missing parents) with mode 0700, or restricts an existing one to it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
        restrict(dir, DIR_MODE)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Makes sure a file is 0600: creates it empty with that mode when missing, restricts it otherwise.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(FILE_MODE).open(path)?;
        restrict(path, FILE_MODE)
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path).map(|_| ())
    }
}

/// Writes a whole file that is private from its first byte (created 0600, not chmod-ed afterwards).
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    restrict(path, FILE_MODE)?;
    file.write_all(contents)
}

/// Takes group and other permissions away from an existing file or directory.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o777 != mode {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "was readable by others; restricting it to the owner");
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The file of a `sqlite://` database URL (None for PostgreSQL or an in-memory database).
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url.strip_prefix("sqlite://")?;
    if path.is_empty() || path.contains(":memory:") || path.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Creates the SQLite database file 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm`
/// files the mode of the database file), and restricts those of an existing installation.
pub fn secure_sqlite_files(database_url: &str) -> io::Result<()> {
    let Some(file) = sqlite_file(database_url) else {
        return Ok(());
    };
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        create_private_dir(parent)?;
    }
    ensure_private_file(&file)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = file.clone().into_os_string();
        companion.push(suffix);
        let companion = PathBuf::from(companion);
        if companion.exists() {
            ensure_private_file(&companion)?;
        }
    }
    Ok(())
}

// Two attributes, not `all(test, unix)`: clippy recognises only a plain `cfg(test)` as test code.
#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_files_are_private() {
        let base = tempfile_dir();
        let dir = base.join("a/b");
        prepare(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let db = dir.join("x.sqlite");
        std::fs::write(dir.join("x.sqlite-wal"), b"").unwrap();
        std::fs::set_permissions(dir.join("x.sqlite-wal"), std::fs::Permissions::from_mode(0o644)).unwrap();
        secure_sqlite_files(&format!("sqlite://{}", db.display())).unwrap();
        for f in ["x.sqlite", "x.sqlite-wal"] {
            assert_eq!(std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
        }
        assert_eq!(sqlite_file("postgres://x/y"), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("rssp-datadir-{}", hex::encode(crate::domain::secrets::random_bytes::<6>())));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
