//! Property tests of the identity-document check: any upload, and any damage to a good one, is
//! accepted or refused without a panic.

use proptest::prelude::*;

use super::{check, DocumentType};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

fn kind() -> impl Strategy<Value = DocumentType> {
    prop::sample::select(vec![DocumentType::Pdf, DocumentType::Png, DocumentType::Jpeg])
}

/// A small valid PDF (the structure `check` looks for).
fn tiny_pdf() -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let catalog = pdf.len();
    pdf.extend_from_slice(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 2\n0000000000 65535 f \n{catalog:010} 00000 n \ntrailer\n<< /Size 2 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n")
            .as_bytes(),
    );
    pdf
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_are_checked_without_panic(kind in kind(), data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = check(kind, &data);
    }

    #[test]
    fn a_damaged_pdf_is_checked_without_panic(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut pdf = tiny_pdf();
        prop_assert_eq!(check(DocumentType::Pdf, &pdf), Ok(()));
        let at = at.index(pdf.len());
        pdf[at] = byte;
        let _ = check(DocumentType::Pdf, &pdf);
        pdf.truncate(cut.index(pdf.len()));
        let _ = check(DocumentType::Pdf, &pdf);
    }
}
