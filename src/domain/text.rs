//! Rules for text that people see: names shown on pages and used for files.

/// Whether `c` is invisible or has no meaning to a reader: Unicode's control, format, line and paragraph
/// separator, private-use, surrogate and unassigned characters. A direction mark could make
/// `invoice\u{202E}fdp.exe` show as `invoiceexe.pdf`, or an application's name read as another's.
pub fn is_hidden(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    matches!(
        get_general_category(c),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::PrivateUse
            | G::Unassigned
            | G::Surrogate
    )
}
