//! The rules of a document signing session that need no I/O: which names a file may have (each becomes
//! a download's name and an entry of `SignedFiles.zip`), what a file becomes when signed and under which
//! name, and what a session costs.

use std::collections::HashSet;

use super::ades::ConformanceLevel;
use super::SignedOutput;

/// Longest file name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Longest reason or location a PDF signature shows, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// How long a sign request's hold on a session lasts before another request may take it over: only a
/// node that died while signing leaves a hold behind, and signing the largest session takes far less.
pub const CLAIM_STALE_AFTER_SECS: i64 = 600;

/// Why a file name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but spaces.
    #[error("a file name is empty")]
    Empty,
    /// Over [`MAX_NAME_CHARS`] characters (the start of it).
    #[error("the file name {0:?} is longer than {MAX_NAME_CHARS} characters")]
    TooLong(String),
    /// A path, a drive, a device name, a character some system refuses or hides, `.` or `..`.
    #[error("the file name {0:?} is not a plain file name (no folder, drive, device name, control or formatting character, or any of <>\"|?*, and no dot or space at the end): send the file's own name")]
    NotPlain(String),
    /// Two entries of the zip with one name.
    #[error("two files would be called {0:?} (in the zip, letter case aside): rename one")]
    Twice(String),
}

/// A file's name as the person sent it, checked: one plain name, without folder or control character,
/// not `.` or `..`, at most [`MAX_NAME_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentName(String);

impl DocumentName {
    /// The name, if it is one plain name.
    pub fn parse(text: &str) -> Result<DocumentName, NameError> {
        if text.trim().is_empty() {
            return Err(NameError::Empty);
        }
        if text.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong(text.chars().take(40).collect::<String>() + "…"));
        }
        if !is_plain(text) {
            return Err(NameError::NotPlain(text.to_string()));
        }
        Ok(DocumentName(text.to_string()))
    }

    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The signed file's name: a PDF keeps its name, a `.p7s` is named after the file it signs.
    pub fn signed(&self, output: SignedOutput) -> String {
        match output {
            SignedOutput::Pdf => self.0.clone(),
            SignedOutput::P7s => format!("{}.p7s", self.0),
        }
    }
}

/// Whether a name is one that every system saves as it is: no folder separator or drive (`/`, `\`, `:`),
/// none of the characters Windows refuses (`<>"|?*`), nothing invisible or without a meaning (Unicode's
/// control, format, line and paragraph separator, private-use and unassigned characters: a direction mark
/// could make `invoice\u{202E}fdp.exe` show as `invoiceexe.pdf`), not `.` or `..`, not ending in a dot or a
/// space, not a device name of Windows (`CON`, `NUL`, `COM1`, `CONIN$`, ...).
fn is_plain(text: &str) -> bool {
    let refused =
        |c: char| matches!(c, '/' | '\\' | ':' | '<' | '>' | '"' | '|' | '?' | '*') || super::text::is_hidden(c);
    let stem = text.split('.').next().unwrap_or_default().trim_end().to_uppercase();
    let numbered = |prefix: &str| {
        stem.strip_prefix(prefix).is_some_and(|n| {
            n.chars().count() == 1 && n.chars().all(|c| c.is_ascii_digit() || matches!(c, '¹' | '²' | '³'))
        })
    };
    let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" | "CLOCK$")
        || numbered("COM")
        || numbered("LPT");
    !text.chars().any(refused) && !text.ends_with('.') && !text.ends_with(' ') && !device
}

/// What a file becomes when the person does not say: a PDF (by its header) is signed inside, anything
/// else gets a `.p7s`.
pub fn default_output(content: &[u8]) -> SignedOutput {
    if content.starts_with(b"%PDF-") {
        SignedOutput::Pdf
    } else {
        SignedOutput::P7s
    }
}

/// The entries of `SignedFiles.zip`, in the session's order: a signed PDF under its name; for any other
/// file, the file itself and its `.p7s` beside it. Each entry is (name, file index, whether it is the
/// signed file). Refused when two entries would have the same name, letter case aside (as Windows and
/// macOS unpack them).
pub fn zip_entries(files: &[(DocumentName, SignedOutput)]) -> Result<Vec<(String, usize, bool)>, NameError> {
    let mut entries = Vec::new();
    for (index, (name, output)) in files.iter().enumerate() {
        if *output == SignedOutput::P7s {
            entries.push((name.as_str().to_string(), index, false));
        }
        entries.push((name.signed(*output), index, true));
    }
    let mut seen = HashSet::new();
    for (name, _, _) in &entries {
        if !seen.insert(name.to_lowercase()) {
            return Err(NameError::Twice(name.clone()));
        }
    }
    Ok(entries)
}

/// The transactions a signature at `level` spends: itself and each time-stamp it carries.
pub fn transactions(level: ConformanceLevel) -> i64 {
    1 + level.time_stamps() as i64
}

/// A reason or location as a PDF signature shows it: at most [`MAX_LABEL_CHARS`] characters, no
/// control character. None when it is not one.
pub fn label(text: &str) -> Option<&str> {
    (text.chars().count() <= MAX_LABEL_CHARS && !text.chars().any(char::is_control)).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> DocumentName {
        DocumentName::parse(text).unwrap()
    }

    #[test]
    fn a_file_name_is_one_plain_name() {
        assert_eq!(name("Contract 2026 – ş.pdf").as_str(), "Contract 2026 – ş.pdf");
        for bad in [
            "../etc/passwd",
            "a/b.pdf",
            "a\\b.pdf",
            "..",
            ".",
            "a\nb",
            "x\u{0}y",
            "C:x.pdf",
            "a<b",
            "a?.pdf",
            "a*",
            "a|b",
            "a\"b",
            "name.",
            "name ",
            "CON",
            "nul.txt",
            "COM1.pdf",
            "invoice\u{202E}fdp.exe",
            "a\u{200B}b",
            "soft\u{AD}hyphen",
            "line\u{2028}break",
            "private\u{E000}",
            "tag\u{E0041}",
            "unassigned\u{0378}",
            "CONIN$.txt",
            "lpt².pdf",
        ] {
            assert!(matches!(DocumentName::parse(bad), Err(NameError::NotPlain(_))), "{bad:?}");
        }
        assert_eq!(DocumentName::parse("  "), Err(NameError::Empty));
        assert!(matches!(DocumentName::parse(&"a".repeat(201)), Err(NameError::TooLong(_))));
        assert!(DocumentName::parse(&"ş".repeat(200)).is_ok());
        for fine in ["CONTRACT.pdf", "com10.txt", "console.log", ".hidden", "a b.c d", "Ünïcödé 合同 ✓.pdf"] {
            assert!(DocumentName::parse(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn pdfs_keep_their_name_and_other_files_get_a_p7s_beside_them_in_the_zip() {
        let files = [(name("a.pdf"), SignedOutput::Pdf), (name("b.txt"), SignedOutput::P7s)];
        assert_eq!(
            zip_entries(&files).unwrap(),
            vec![("a.pdf".into(), 0, true), ("b.txt".into(), 1, false), ("b.txt.p7s".into(), 1, true)]
        );
        // A PDF signed apart keeps the original beside its .p7s.
        assert_eq!(zip_entries(&[(name("c.pdf"), SignedOutput::P7s)]).unwrap().len(), 2);
    }

    #[test]
    fn names_that_would_collide_in_the_zip_are_refused() {
        let twice = |files: &[(DocumentName, SignedOutput)]| zip_entries(files).unwrap_err();
        assert_eq!(
            twice(&[(name("a.pdf"), SignedOutput::Pdf), (name("A.PDF"), SignedOutput::Pdf)]),
            NameError::Twice("A.PDF".into())
        );
        // "x" signed apart makes "x.p7s", which another file already is.
        assert_eq!(
            twice(&[(name("x"), SignedOutput::P7s), (name("x.p7s"), SignedOutput::Pdf)]),
            NameError::Twice("x.p7s".into())
        );
    }

    #[test]
    fn the_default_output_follows_the_header_and_a_level_costs_its_time_stamps() {
        assert_eq!(default_output(b"%PDF-1.7\n"), SignedOutput::Pdf);
        assert_eq!(default_output(b"hello"), SignedOutput::P7s);
        assert_eq!(transactions(ConformanceLevel::BB), 1);
        assert_eq!(transactions(ConformanceLevel::BLta), 3);
        assert_eq!(label("Approved"), Some("Approved"));
        assert_eq!(label("a\u{7}"), None);
    }
}
