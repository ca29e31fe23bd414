//! PAdES signatures inside a PDF (ETSI EN 319 142-1, ISO 32000-1 §12.8), made as an incremental update:
//! the original bytes stay as they are, so earlier signatures stay valid, and a signature dictionary
//! (`/SubFilter /ETSI.CAdES.detached`), its field and widget (invisible, or visible with an appearance
//! naming the signer, the time, and a reason and location if given) are appended after them.
//!
//! [`prepare`] writes the update with room for the CMS in `/Contents` and the real `/ByteRange`; the
//! caller signs [`Prepared::byte_range_digest`] (a [`super::cades`] CMS without signing-time: the time is
//! `/M`) and [`Prepared::finish`] writes the CMS into the room kept for it. Refused before anything is
//! signed: files that are not PDFs, encrypted PDFs, PDFs certified with "no changes allowed", XFA forms,
//! and PDFs whose cross-reference data had to be reconstructed.

use std::ops::Range;

use lopdf::{Dictionary, Document, IncrementalDocument, Object, ObjectId, Stream, StringFormat};

use crate::domain::{HashAlgorithm, Hasher};

/// Why a PDF cannot be signed (shown to the client).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PdfRefusal {
    /// Not a PDF, or one rssp cannot read.
    #[error("the document is not a PDF rssp can read ({0})")]
    NotPdf(String),
    /// Encrypted or password-protected.
    #[error("the PDF is encrypted or password-protected; send it without encryption")]
    Encrypted,
    /// Certified with DocMDP P=1.
    #[error("the PDF is certified with no changes allowed: a signature would break its certification")]
    NoChangesAllowed,
    /// Holds an XFA form.
    #[error("the PDF holds an XFA form (a dynamic, \"smart\" PDF), whose signatures rssp cannot make valid")]
    Xfa,
    /// Its cross-reference data is damaged.
    #[error("the PDF's cross-reference data is damaged; repair the file (e.g. qpdf) and send it again")]
    Damaged,
    /// A certification signature asked for where there is a signature already.
    #[error("the PDF is signed already: only its first signature can certify it (ask for Revision)")]
    CertifyAfterSignature,
    /// A visible signature on a page the PDF does not have.
    #[error("the PDF has no page {0}")]
    NoSuchPage(u32),
    /// A visible signature's rectangle that is not one.
    #[error("the signature rectangle must have a positive width and height")]
    BadRectangle,
}

/// Where a visible signature goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visible {
    /// The page, from 1.
    pub page: u32,
    /// The rectangle in PDF points from the page's lower left corner: x1, y1, x2, y2.
    pub rect: [f32; 4],
}

/// What the signature says, besides its CMS.
#[derive(Debug, Clone)]
pub struct SignatureFields<'a> {
    /// The signer's name (`/Name`, and the appearance).
    pub signer_name: &'a str,
    /// The signing time, Unix seconds (`/M`, and the appearance).
    pub signing_time: i64,
    /// `/Reason`.
    pub reason: Option<&'a str>,
    /// `/Location`.
    pub location: Option<&'a str>,
    /// Certify the document (DocMDP: form filling and signing allowed after), or approve it. None: certify
    /// when the PDF holds no signature yet, approve otherwise.
    pub certify: Option<bool>,
    /// Invisible when None.
    pub visible: Option<Visible>,
    /// Bytes kept for the CMS (DER).
    pub reserved: usize,
}

/// A PDF with its signature update written, waiting for the CMS.
#[derive(Debug, Clone)]
pub struct Prepared {
    pdf: Vec<u8>,
    /// The hex string `<…>` kept for the CMS, brackets included: what `/ByteRange` leaves out.
    contents: Range<usize>,
    /// The length of the PDF the update was written after: its bytes start `pdf` as they were.
    original_len: usize,
    /// Whether the signature certifies the document.
    pub certifies: bool,
}

impl Prepared {
    /// The digest the CMS signs: of the file without the `/Contents` string (ISO 32000-1 §12.8.1).
    pub fn byte_range_digest(&self, hash: HashAlgorithm) -> Vec<u8> {
        self.byte_range_digest_after(hash.hasher(), 0)
    }

    /// The same digest, going on from `original`, a hasher that has read exactly the PDF that was
    /// prepared (which the update leaves as it was, at the start of the file): a large PDF is then not
    /// read a second time.
    pub fn byte_range_digest_from_original(&self, original: Hasher) -> Result<Vec<u8>, super::PkiError> {
        // The signature object is written after the original bytes, so its /Contents is too; were it
        // not, the hasher would have read part of what the signature leaves out.
        if self.original_len > self.contents.start {
            return Err(super::PkiError::Invalid("the signature's /Contents lies inside the original PDF".into()));
        }
        Ok(self.byte_range_digest_after(original, self.original_len))
    }

    /// The digest of the covered bytes from `from` (at most `contents.start`) on, by `hasher`, which has
    /// read those before.
    fn byte_range_digest_after(&self, mut hasher: Hasher, from: usize) -> Vec<u8> {
        hasher.update(&self.pdf[from..self.contents.start]);
        hasher.update(&self.pdf[self.contents.end..]);
        hasher.finish()
    }

    /// The signed PDF: `cms` (DER) written into the room kept for it.
    pub fn finish(mut self, cms: &[u8]) -> Result<Vec<u8>, super::PkiError> {
        let room = (self.contents.len() - 2) / 2;
        if cms.len() > room {
            return Err(super::PkiError::Invalid(format!("a CMS of {} bytes for {room} bytes kept", cms.len())));
        }
        let hex = hex::encode_upper(cms);
        let start = self.contents.start + 1;
        self.pdf[start..start + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.pdf)
    }
}

/// Reads what matters of a PDF before it is signed: whether it may be, and whether it is signed already.
struct Inspected {
    document: Document,
    catalog_id: ObjectId,
    signed: bool,
    field_names: std::collections::HashSet<Vec<u8>>,
}

fn inspect(pdf: &[u8]) -> Result<Inspected, PdfRefusal> {
    // Bytes before the header would shift every offset lopdf reads from the ones the update writes.
    if !pdf.starts_with(b"%PDF-") {
        return Err(PdfRefusal::NotPdf("the file does not start with %PDF-".into()));
    }
    let options = lopdf::LoadOptions {
        strict: true,
        max_decompressed_size: Some(MAX_DECOMPRESSED_BYTES),
        ..lopdf::LoadOptions::default()
    };
    let document = Document::load_mem_with_options(pdf, options).map_err(|e| match e {
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => PdfRefusal::Encrypted,
        e => PdfRefusal::NotPdf(e.to_string()),
    })?;
    if document.trailer.has(b"Encrypt") || document.is_encrypted() || document.was_encrypted() {
        return Err(PdfRefusal::Encrypted);
    }
    // Cross-reference data repaired or rebuilt, or objects it does not list (which lopdf still reads
    // from object streams, where other readers see nothing): what rssp would copy into its update could
    // then render otherwise than the file the person approved.
    if document.xref_start == 0 || document.xref_recovery.is_some() {
        return Err(PdfRefusal::Damaged);
    }
    let listed = |id: &ObjectId| match document.reference_table.get(id.0) {
        Some(lopdf::xref::XrefEntry::Normal { generation, .. }) => *generation == id.1,
        Some(lopdf::xref::XrefEntry::Compressed { .. }) => id.1 == 0,
        _ => false,
    };
    if !document.objects.keys().all(listed) {
        return Err(PdfRefusal::Damaged);
    }
    // ISO 32000-1 annex C: no object number above 8,388,607; rssp's update numbers its objects after the
    // highest.
    if document.max_id >= MAX_OBJECT_NUMBER {
        return Err(PdfRefusal::Damaged);
    }
    let catalog_id = document.trailer.get(b"Root").and_then(Object::as_reference).map_err(|_| PdfRefusal::Damaged)?;
    let catalog = document.get_dictionary(catalog_id).map_err(|_| PdfRefusal::Damaged)?;
    if catalog.get(b"NeedsRendering").and_then(Object::as_bool).unwrap_or(false) {
        return Err(PdfRefusal::Xfa);
    }
    let acro_form = catalog.get(b"AcroForm").ok().and_then(|o| deref_dict(&document, o));
    if acro_form.is_some_and(|form| form.has(b"XFA")) {
        return Err(PdfRefusal::Xfa);
    }
    let permissions = docmdp_permissions(&document, catalog);
    if permissions == Some(1) {
        return Err(PdfRefusal::NoChangesAllowed);
    }
    let mut field_names = std::collections::HashSet::new();
    // A certified document is signed, whether or not its form lists the signature.
    let mut signed = permissions.is_some();
    if let Some(fields) = acro_form.and_then(|form| form.get(b"Fields").ok()).and_then(|o| deref_array(&document, o)) {
        let mut walk = FieldWalk { document: &document, visited: std::collections::HashSet::new() };
        walk.fields(fields, Inherited::default(), &mut |field, inherited| {
            if let Ok(name) = field.get(b"T").and_then(Object::as_str) {
                field_names.insert(name.to_vec());
            }
            if inherited.signature && inherited.value {
                signed = true;
            }
        })?;
    }
    Ok(Inspected { document, catalog_id, signed, field_names })
}

/// Most bytes lopdf may inflate from one stream of a PDF to sign.
const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;
/// ISO 32000-1 annex C.
const MAX_OBJECT_NUMBER: u32 = 8_388_607;
/// Most fields walked in a form: more is refused as damaged (a file of a few hundred bytes can make a
/// tree of millions by repeating a reference).
const MAX_FIELDS: usize = 10_000;

/// What a field inherits from its ancestors (ISO 32000-1 §12.7.3.1): its type and value.
#[derive(Debug, Clone, Copy, Default)]
struct Inherited {
    signature: bool,
    value: bool,
}

/// A walk over the form's field tree that visits each field once.
struct FieldWalk<'a> {
    document: &'a Document,
    visited: std::collections::HashSet<ObjectId>,
}

impl FieldWalk<'_> {
    fn fields(
        &mut self,
        fields: &[Object],
        parent: Inherited,
        visit: &mut impl FnMut(&Dictionary, Inherited),
    ) -> Result<(), PdfRefusal> {
        for field in fields {
            if let Object::Reference(id) = field {
                if !self.visited.insert(*id) {
                    continue;
                }
                if self.visited.len() > MAX_FIELDS {
                    return Err(PdfRefusal::Damaged);
                }
            }
            let Some(dictionary) = deref_dict(self.document, field) else { continue };
            let inherited = Inherited {
                signature: dictionary.get(b"FT").and_then(Object::as_name).map_or(parent.signature, |t| t == b"Sig"),
                value: parent.value || dictionary.has(b"V"),
            };
            visit(dictionary, inherited);
            if let Some(kids) = dictionary.get(b"Kids").ok().and_then(|k| deref_array(self.document, k)) {
                self.fields(kids, inherited, visit)?;
            }
        }
        Ok(())
    }
}

/// The `/P` of the document's certification signature, if it is certified (ISO 32000-1 §12.8.2.2).
fn docmdp_permissions(document: &Document, catalog: &Dictionary) -> Option<i64> {
    let perms = deref_dict(document, catalog.get(b"Perms").ok()?)?;
    let signature = deref_dict(document, perms.get(b"DocMDP").ok()?)?;
    let references = deref_array(document, signature.get(b"Reference").ok()?)?;
    for reference in references {
        let Some(reference) = deref_dict(document, reference) else { continue };
        if reference.get(b"TransformMethod").and_then(Object::as_name).is_ok_and(|m| m == b"DocMDP") {
            let params = reference.get(b"TransformParams").ok().and_then(|p| deref_dict(document, p));
            return Some(params.and_then(|p| p.get(b"P").and_then(Object::as_i64).ok()).unwrap_or(2));
        }
    }
    None
}

fn deref_dict<'a>(document: &'a Document, object: &'a Object) -> Option<&'a Dictionary> {
    document.dereference(object).ok()?.1.as_dict().ok()
}

fn deref_array<'a>(document: &'a Document, object: &'a Object) -> Option<&'a Vec<Object>> {
    document.dereference(object).ok()?.1.as_array().ok()
}

/// Writes the signature update after `pdf` (taken, not copied: the prepared file starts with its bytes),
/// with `fields.reserved` bytes kept for the CMS.
pub fn prepare(pdf: Vec<u8>, fields: &SignatureFields<'_>) -> Result<Prepared, PdfRefusal> {
    let Inspected { document, catalog_id, signed, field_names } = inspect(&pdf)?;
    let certifies = match fields.certify {
        Some(true) if signed => return Err(PdfRefusal::CertifyAfterSignature),
        Some(certify) => certify,
        None => !signed,
    };
    let pages = document.get_pages();
    let page_number = fields.visible.map_or(1, |v| v.page);
    let page_id = *pages.get(&page_number).ok_or(PdfRefusal::NoSuchPage(page_number))?;
    let rect = match fields.visible {
        Some(Visible { rect: [x1, y1, x2, y2], .. }) => {
            if !(x2 - x1 > 0.0 && y2 - y1 > 0.0) || [x1, y1, x2, y2].iter().any(|v| !v.is_finite()) {
                return Err(PdfRefusal::BadRectangle);
            }
            [x1, y1, x2, y2]
        }
        None => [0.0; 4],
    };
    let field_name = unique_field_name(&field_names);

    let mut signature = Dictionary::new();
    signature.set("Type", Object::Name(b"Sig".to_vec()));
    signature.set("Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
    signature.set("SubFilter", Object::Name(b"ETSI.CAdES.detached".to_vec()));
    signature.set("M", Object::String(pdf_date(fields.signing_time).into_bytes(), StringFormat::Literal));
    signature.set("Name", text_string(fields.signer_name));
    if let Some(reason) = fields.reason {
        signature.set("Reason", text_string(reason));
    }
    if let Some(location) = fields.location {
        signature.set("Location", text_string(location));
    }
    if certifies {
        let mut params = Dictionary::new();
        params.set("Type", Object::Name(b"TransformParams".to_vec()));
        // Form filling and signing allowed after the certification.
        params.set("P", Object::Integer(2));
        params.set("V", Object::Name(b"1.2".to_vec()));
        let mut reference = Dictionary::new();
        reference.set("Type", Object::Name(b"SigRef".to_vec()));
        reference.set("TransformMethod", Object::Name(b"DocMDP".to_vec()));
        reference.set("TransformParams", Object::Dictionary(params));
        signature.set("Reference", Object::Array(vec![Object::Dictionary(reference)]));
    }
    let widget = Widget { page_id, rect, visible: fields.visible.is_some().then_some(fields), name: field_name };
    append_signature(pdf, document, catalog_id, signature, widget, certifies, fields.reserved)
}

/// Prepares a document time-stamp (ETSI EN 319 142-1 §5.4.3: `/Type /DocTimeStamp`,
/// `/SubFilter /ETSI.RFC3161`), the last step of B-LTA: `/Contents` takes a TimeStampToken over the
/// /ByteRange digest instead of a CMS signature.
pub fn prepare_document_time_stamp(pdf: Vec<u8>, reserved: usize) -> Result<Prepared, PdfRefusal> {
    let Inspected { document, catalog_id, field_names, .. } = inspect(&pdf)?;
    let page_id = *document.get_pages().get(&1).ok_or(PdfRefusal::NoSuchPage(1))?;
    let mut signature = Dictionary::new();
    signature.set("Type", Object::Name(b"DocTimeStamp".to_vec()));
    signature.set("Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
    signature.set("SubFilter", Object::Name(b"ETSI.RFC3161".to_vec()));
    let widget = Widget { page_id, rect: [0.0; 4], visible: None, name: unique_field_name(&field_names) };
    append_signature(pdf, document, catalog_id, signature, widget, false, reserved)
}

/// The field and widget of a signature.
struct Widget<'a> {
    page_id: ObjectId,
    rect: [f32; 4],
    /// For a visible signature: what its appearance says.
    visible: Option<&'a SignatureFields<'a>>,
    name: String,
}

fn unique_field_name(taken: &std::collections::HashSet<Vec<u8>>) -> String {
    (1..).map(|n| format!("Signature{n}")).find(|n| !taken.contains(n.as_bytes())).unwrap_or_default()
}

/// Appends `signature` (its `/ByteRange` and `/Contents` added here), its field and widget on the page,
/// and the form's list of fields, as an incremental update of `pdf`, with `reserved` bytes kept.
fn append_signature(
    pdf: Vec<u8>,
    document: Document,
    catalog_id: ObjectId,
    mut signature: Dictionary,
    widget: Widget<'_>,
    certifies: bool,
    reserved: usize,
) -> Result<Prepared, PdfRefusal> {
    // Placeholders as wide as any real value: rewritten in place once the offsets are known.
    let wide = Object::Integer(BYTE_RANGE_PLACEHOLDER);
    signature.set("ByteRange", Object::Array(vec![Object::Integer(0), wide.clone(), wide.clone(), wide]));
    signature.set("Contents", Object::String(vec![0; reserved], StringFormat::Hexadecimal));
    let original_len = pdf.len();
    let mut update = update_of(&pdf, document);
    let new = &mut update.new_document;
    let signature_id = new.try_add_object(Object::Dictionary(signature)).map_err(|_| PdfRefusal::Damaged)?;

    let mut annotation = Dictionary::new();
    annotation.set("Type", Object::Name(b"Annot".to_vec()));
    annotation.set("Subtype", Object::Name(b"Widget".to_vec()));
    annotation.set("FT", Object::Name(b"Sig".to_vec()));
    annotation.set("T", Object::String(widget.name.into_bytes(), StringFormat::Literal));
    annotation.set("V", Object::Reference(signature_id));
    // Print and Locked (ISO 32000-1 §12.5.3).
    annotation.set("F", Object::Integer(132));
    annotation.set("Rect", Object::Array(widget.rect.iter().map(|v| Object::Real(*v)).collect()));
    annotation.set("P", Object::Reference(widget.page_id));
    if let Some(fields) = widget.visible {
        let [x1, y1, x2, y2] = widget.rect;
        let appearance = appearance(new, x2 - x1, y2 - y1, fields);
        let mut ap = Dictionary::new();
        ap.set("N", Object::Reference(appearance));
        annotation.set("AP", Object::Dictionary(ap));
    }
    let widget_id = new.try_add_object(Object::Dictionary(annotation)).map_err(|_| PdfRefusal::Damaged)?;

    add_to_page(&mut update, widget.page_id, widget_id).map_err(|_| PdfRefusal::Damaged)?;
    add_to_form(&mut update, catalog_id, widget_id, certifies.then_some(signature_id))
        .map_err(|_| PdfRefusal::Damaged)?;

    let mut written = pdf;
    // Room for the update, so that the PDF is not moved while it is appended.
    written.reserve_exact(2 * reserved + 64 * 1024);
    append_update(&mut update, &mut written)?;
    // Only inside rssp's own signature object: objects copied from the file come before it, and a hostile
    // file could hold a placeholder of its own there.
    let object = own_object(&written, original_len, signature_id).ok_or(PdfRefusal::Damaged)?;
    let contents = find_contents(&written, &object, reserved).ok_or(PdfRefusal::Damaged)?;
    write_byte_range(&mut written, &object, &contents).ok_or(PdfRefusal::Damaged)?;
    Ok(Prepared { pdf: written, contents, original_len, certifies })
}

/// An incremental update of `pdf`, parsed as `document`, for [`append_update`] to write.
///
/// lopdf (0.47, pinned for this) writes an update after a copy of the bytes it was made from, which it
/// only counts (for the offsets the update's cross-reference data gives) and whose last byte it reads
/// (an update starts on a line of its own). It is given a stand-in instead: as long as `pdf`, ending in
/// the same byte, and otherwise zeros. For a PDF above glibc's mapping threshold (32 MiB at most) those
/// are pages of their own that nothing touches; a smaller one may be cleared, which costs less than the
/// copy did. The PDF is then not copied to be written; [`append_update`] appends the update to the PDF
/// itself. A unit test holds the result equal to lopdf's own.
fn update_of(pdf: &[u8], document: Document) -> IncrementalDocument {
    let mut stand_in = vec![0u8; pdf.len()];
    if let (Some(last), Some(real)) = (stand_in.last_mut(), pdf.last()) {
        *last = *real;
    }
    IncrementalDocument::create_from(stand_in, without_stream_contents(document))
}

/// Appends `update` (made by [`update_of`] from `pdf`) to `pdf`: what lopdf writes, less the
/// stand-in's bytes, which it writes first.
fn append_update(update: &mut IncrementalDocument, pdf: &mut Vec<u8>) -> Result<(), PdfRefusal> {
    /// Drops the first `skip` bytes written, and appends the rest to `pdf`.
    struct AfterOriginal<'a> {
        skip: usize,
        pdf: &'a mut Vec<u8>,
    }
    impl std::io::Write for AfterOriginal<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.skip > 0 {
                let skipped = self.skip.min(bytes.len());
                self.skip -= skipped;
                return Ok(skipped);
            }
            self.pdf.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let skip = update.get_prev_documents_bytes().len();
    if skip != pdf.len() {
        return Err(PdfRefusal::Damaged);
    }
    let mut out = AfterOriginal { skip, pdf };
    update.save_to(&mut out).map_err(|_| PdfRefusal::Damaged)?;
    if out.skip != 0 {
        return Err(PdfRefusal::Damaged);
    }
    Ok(())
}

/// The parsed file without the contents of its streams, once it has been judged: an update copies and
/// changes dictionaries only (catalog, page, form), never a stream of the file, and the file's own bytes
/// are written as they are; the streams of a large PDF (images, fonts) would otherwise be held in memory
/// twice while the update is written.
fn without_stream_contents(mut document: Document) -> Document {
    for object in document.objects.values_mut() {
        if let Object::Stream(stream) = object {
            stream.content = Vec::new();
        }
    }
    document
}

/// Appends `data` to a signed PDF in its Document Security Store (ETSI EN 319 142-1 §5.4.2, ISO 32000-2
/// §12.8.4.3), an incremental update of its own: a B-T signature becomes B-LT. What the DSS holds
/// already stays, and is not added twice.
pub fn with_dss(
    pdf: Vec<u8>,
    certificates: &[Vec<u8>],
    ocsps: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, PdfRefusal> {
    let Inspected { document, catalog_id, .. } = inspect(&pdf)?;
    let catalog = document.get_dictionary(catalog_id).map_err(|_| PdfRefusal::Damaged)?;
    let existing = catalog.get(b"DSS").ok().and_then(|dss| deref_dict(&document, dss)).cloned().unwrap_or_default();
    // What each of the DSS's lists holds now: the references, and the bytes they point at.
    let held = |key: &[u8]| -> (Vec<Object>, Vec<Vec<u8>>) {
        let list = existing.get(key).ok().and_then(|l| deref_array(&document, l)).cloned().unwrap_or_default();
        let bytes = list
            .iter()
            .filter_map(|o| document.dereference(o).ok()?.1.as_stream().ok()?.get_plain_content().ok())
            .collect();
        (list, bytes)
    };
    let lists = [(&b"Certs"[..], certificates), (&b"OCSPs"[..], ocsps), (&b"CRLs"[..], crls)].map(|(key, new)| {
        let (list, bytes) = held(key);
        (key, list, bytes, new)
    });
    let mut update = update_of(&pdf, document);
    let mut dss = existing.clone();
    for (key, mut list, bytes, new) in lists {
        for item in new.iter().filter(|item| !bytes.contains(item)) {
            let stream = Object::Stream(Stream::new(Dictionary::new(), item.clone()));
            let id = update.new_document.try_add_object(stream).map_err(|_| PdfRefusal::Damaged)?;
            list.push(Object::Reference(id));
        }
        dss.set(key, Object::Array(list));
    }
    update.opt_clone_object_to_new_document(catalog_id).map_err(|_| PdfRefusal::Damaged)?;
    update
        .new_document
        .get_dictionary_mut(catalog_id)
        .map_err(|_| PdfRefusal::Damaged)?
        .set("DSS", Object::Dictionary(dss));
    let mut written = pdf;
    let added: usize = certificates.iter().chain(ocsps).chain(crls).map(Vec::len).sum();
    written.reserve_exact(added + 64 * 1024);
    append_update(&mut update, &mut written)?;
    Ok(written)
}

/// Wider than any offset in a file rssp signs, so that the real values fit where it was written.
const BYTE_RANGE_PLACEHOLDER: i64 = 9_999_999_999;

/// The page lists the widget in its `/Annots`.
fn add_to_page(update: &mut IncrementalDocument, page_id: ObjectId, widget_id: ObjectId) -> lopdf::Result<()> {
    push_to_array(update, page_id, b"Annots", Object::Reference(widget_id))
}

/// The form lists the field, with `/SigFlags` 3 (signatures exist, append only); a certification is named
/// in the catalog's `/Perms`. A form dictionary inside the catalog (or none) becomes an object of its own.
fn add_to_form(
    update: &mut IncrementalDocument,
    catalog_id: ObjectId,
    widget_id: ObjectId,
    certification: Option<ObjectId>,
) -> lopdf::Result<()> {
    update.opt_clone_object_to_new_document(catalog_id)?;
    let form_id = match update.new_document.get_dictionary(catalog_id)?.get(b"AcroForm").ok().cloned() {
        Some(Object::Reference(form_id)) => form_id,
        direct => {
            let form = match direct {
                Some(Object::Dictionary(form)) => form,
                _ => Dictionary::new(),
            };
            let form_id = update.new_document.try_add_object(Object::Dictionary(form))?;
            update.new_document.get_dictionary_mut(catalog_id)?.set("AcroForm", Object::Reference(form_id));
            form_id
        }
    };
    push_to_array(update, form_id, b"Fields", Object::Reference(widget_id))?;
    update.new_document.get_dictionary_mut(form_id)?.set("SigFlags", Object::Integer(3));
    if let Some(signature_id) = certification {
        let catalog = update.new_document.get_dictionary_mut(catalog_id)?;
        // Other permissions (a usage-rights signature, /UR3) stay.
        let mut perms = match catalog.get(b"Perms") {
            Ok(Object::Dictionary(perms)) => perms.clone(),
            _ => Dictionary::new(),
        };
        perms.set("DocMDP", Object::Reference(signature_id));
        catalog.set("Perms", Object::Dictionary(perms));
    }
    Ok(())
}

/// Appends `item` to the array under `key` of the dictionary object `owner`, both copied into the update:
/// the array inside the dictionary or an object of its own, created when there is none.
fn push_to_array(update: &mut IncrementalDocument, owner: ObjectId, key: &[u8], item: Object) -> lopdf::Result<()> {
    update.opt_clone_object_to_new_document(owner)?;
    match update.new_document.get_dictionary(owner)?.get(key).ok().cloned() {
        Some(Object::Reference(array_id)) => {
            update.opt_clone_object_to_new_document(array_id)?;
            update.new_document.get_object_mut(array_id)?.as_array_mut()?.push(item);
        }
        Some(Object::Array(mut array)) => {
            array.push(item);
            update.new_document.get_dictionary_mut(owner)?.set(key, Object::Array(array));
        }
        _ => update.new_document.get_dictionary_mut(owner)?.set(key, vec![item]),
    }
    Ok(())
}

/// Where the update (after `from`) writes object `id`: from its `N G obj` to its `endobj`.
fn own_object(pdf: &[u8], from: usize, id: ObjectId) -> Option<Range<usize>> {
    let header = format!("\n{} {} obj", id.0, id.1);
    let start = pdf[from..].windows(header.len()).position(|w| w == header.as_bytes())? + from + 1;
    let end = pdf[start..].windows(6).position(|w| w == b"endobj")? + start;
    Some(start..end)
}

/// The hex string of `2 × reserved` zeros in `object`: the `/Contents` kept for the CMS, the only one.
fn find_contents(pdf: &[u8], object: &Range<usize>, reserved: usize) -> Option<Range<usize>> {
    let width = 2 * reserved + 2;
    let body = &pdf[object.clone()];
    let key = body.windows(9).position(|w| w == b"/Contents")?;
    let start = object.start + key + 9 + body[key + 9..].iter().position(|b| !b.is_ascii_whitespace())?;
    let end = start + width;
    let found = end <= object.end
        && pdf[start] == b'<'
        && pdf[end - 1] == b'>'
        && pdf[start + 1..end - 1].iter().all(|b| *b == b'0');
    found.then_some(start..end)
}

/// Rewrites the placeholder `/ByteRange` of `object` with the two ranges around `contents`, padded with
/// spaces to its width.
fn write_byte_range(pdf: &mut [u8], object: &Range<usize>, contents: &Range<usize>) -> Option<()> {
    let key = pdf[object.clone()].windows(10).position(|w| w == b"/ByteRange")? + object.start;
    let open = pdf[key..object.end].iter().position(|b| *b == b'[')? + key;
    let close = pdf[open..object.end].iter().position(|b| *b == b']')? + open;
    let value = format!("0 {} {} {}", contents.start, contents.end, pdf.len() - contents.end);
    let room = close - open - 1;
    if value.len() > room {
        return None;
    }
    let padded = format!("{value:<room$}");
    pdf[open + 1..close].copy_from_slice(padded.as_bytes());
    Some(())
}

/// A PDF date (ISO 32000-1 §7.9.4), UTC.
fn pdf_date(unix: i64) -> String {
    utc(unix).format("D:%Y%m%d%H%M%SZ").to_string()
}

fn utc(unix: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

/// A text string (ISO 32000-1 §7.9.2.2): ASCII as it is, anything else UTF-16BE with its byte order mark.
fn text_string(text: &str) -> Object {
    if text.is_ascii() {
        return Object::String(text.as_bytes().to_vec(), StringFormat::Literal);
    }
    let mut bytes = vec![0xFE, 0xFF];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_be_bytes());
    }
    Object::String(bytes, StringFormat::Hexadecimal)
}

/// The visible signature's appearance: a framed box with the signer, the time, and the reason and
/// location if given, in Helvetica (a standard font: nothing embedded).
fn appearance(document: &mut Document, width: f32, height: f32, fields: &SignatureFields<'_>) -> ObjectId {
    let mut lines = vec![
        format!("Digitally signed by {}", fields.signer_name),
        format!("Date: {}", utc(fields.signing_time).format("%Y-%m-%d %H:%M:%S UTC")),
    ];
    if let Some(reason) = fields.reason {
        lines.push(format!("Reason: {reason}"));
    }
    if let Some(location) = fields.location {
        lines.push(format!("Location: {location}"));
    }
    let longest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f32;
    // Helvetica's characters average about half the font size in width.
    let size = (height / (lines.len() as f32 * 1.25 + 0.5)).min((width - 6.0) / (longest * 0.52)).clamp(3.0, 12.0);
    let mut content = format!(
        "q 0.96 0.97 1 rg 0 0 {width} {height} re f Q\nq 0.2 0.3 0.6 RG 1 w 0.5 0.5 {} {} re S Q\nBT /F1 {size:.2} Tf 0 0 0 rg {:.2} {:.2} Td {:.2} TL\n",
        width - 1.0,
        height - 1.0,
        3.0,
        height - size * 1.1 - 1.0,
        size * 1.25,
    )
    .into_bytes();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            content.extend_from_slice(b"T* ");
        }
        content.push(b'(');
        for byte in win_ansi(line) {
            if matches!(byte, b'(' | b')' | b'\\') {
                content.push(b'\\');
            }
            content.push(byte);
        }
        content.extend_from_slice(b") Tj\n");
    }
    content.extend_from_slice(b"ET\n");
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type1".to_vec()));
    font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
    font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
    let mut fonts = Dictionary::new();
    fonts.set("F1", Object::Dictionary(font));
    let mut resources = Dictionary::new();
    resources.set("Font", Object::Dictionary(fonts));
    let mut form = Dictionary::new();
    form.set("Type", Object::Name(b"XObject".to_vec()));
    form.set("Subtype", Object::Name(b"Form".to_vec()));
    form.set("BBox", vec![Object::Real(0.0), Object::Real(0.0), Object::Real(width), Object::Real(height)]);
    form.set("Resources", Object::Dictionary(resources));
    document.add_object(Object::Stream(Stream::new(form, content)))
}

/// `text` in WinAnsiEncoding (the Latin-1 range and the characters Windows-1252 adds); others as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    const EXTRA: [(char, u8); 27] = [
        ('€', 0x80),
        ('‚', 0x82),
        ('ƒ', 0x83),
        ('„', 0x84),
        ('…', 0x85),
        ('†', 0x86),
        ('‡', 0x87),
        ('ˆ', 0x88),
        ('‰', 0x89),
        ('Š', 0x8A),
        ('‹', 0x8B),
        ('Œ', 0x8C),
        ('Ž', 0x8E),
        ('‘', 0x91),
        ('’', 0x92),
        ('“', 0x93),
        ('”', 0x94),
        ('•', 0x95),
        ('–', 0x96),
        ('—', 0x97),
        ('˜', 0x98),
        ('™', 0x99),
        ('š', 0x9A),
        ('›', 0x9B),
        ('œ', 0x9C),
        ('ž', 0x9E),
        ('Ÿ', 0x9F),
    ];
    text.chars()
        .map(|c| match c as u32 {
            0x20..=0x7E | 0xA0..=0xFF => c as u32 as u8,
            _ => EXTRA.iter().find(|(e, _)| *e == c).map_or(b'?', |(_, b)| *b),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-page PDF written by lopdf, with a cross-reference table.
    pub(crate) fn simple_pdf() -> Vec<u8> {
        let mut document = Document::with_version("1.7");
        let pages_id = document.new_object_id();
        let content = Stream::new(Dictionary::new(), b"BT /F1 12 Tf 72 720 Td (A document to sign) Tj ET".to_vec());
        let content_id = document.add_object(content);
        let mut page = Dictionary::new();
        page.set("Type", Object::Name(b"Page".to_vec()));
        page.set("Parent", Object::Reference(pages_id));
        page.set("MediaBox", vec![0.into(), 0.into(), 595.into(), 842.into()]);
        page.set("Contents", Object::Reference(content_id));
        let page_id = document.add_object(page);
        let mut pages = Dictionary::new();
        pages.set("Type", Object::Name(b"Pages".to_vec()));
        pages.set("Kids", vec![Object::Reference(page_id)]);
        pages.set("Count", 1);
        document.objects.insert(pages_id, Object::Dictionary(pages));
        let mut catalog = Dictionary::new();
        catalog.set("Type", Object::Name(b"Catalog".to_vec()));
        catalog.set("Pages", Object::Reference(pages_id));
        let catalog_id = document.add_object(catalog);
        document.trailer.set("Root", Object::Reference(catalog_id));
        let mut bytes = Vec::new();
        document.save_to(&mut bytes).unwrap();
        bytes
    }

    fn fields(reserved: usize) -> SignatureFields<'static> {
        SignatureFields {
            signer_name: "Ana Novak",
            signing_time: 1_796_000_000,
            reason: Some("I agree (fully)"),
            location: Some("Ljubljana"),
            certify: None,
            visible: None,
            reserved,
        }
    }

    #[test]
    fn the_update_keeps_the_original_bytes_and_the_byte_range_leaves_out_only_the_contents() {
        let pdf = simple_pdf();
        let prepared = prepare(pdf.clone(), &fields(4096)).unwrap();
        assert!(prepared.certifies, "the first signature certifies by default");
        assert_eq!(&prepared.pdf[..pdf.len()], &pdf[..], "an incremental update");
        let contents = prepared.contents.clone();
        assert_eq!(contents.len(), 2 * 4096 + 2);
        let text = String::from_utf8_lossy(&prepared.pdf[pdf.len()..]).to_string();
        let expected =
            format!("/ByteRange[0 {} {} {}", contents.start, contents.end, prepared.pdf.len() - contents.end);
        assert!(text.replace("ByteRange [", "ByteRange[").contains(&expected), "{expected} in {text}");
        assert!(text.contains("/SubFilter/ETSI.CAdES.detached") || text.contains("/SubFilter /ETSI.CAdES.detached"));
        assert!(text.contains("D:20261130"), "{text}");
        let digest = prepared.byte_range_digest(HashAlgorithm::Sha256);
        let mut original = HashAlgorithm::Sha256.hasher();
        original.update(&pdf);
        assert_eq!(prepared.byte_range_digest_from_original(original).unwrap(), digest, "going on from the original's");
        let signed = prepared.finish(&[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
        let mut covered = signed[..contents.start].to_vec();
        covered.extend_from_slice(&signed[contents.end..]);
        assert_eq!(HashAlgorithm::Sha256.digest(&covered), digest, "the CMS does not change what it signs");
        assert!(String::from_utf8_lossy(&signed[contents.clone()]).starts_with("<3003020101000"));
        // It reads as a PDF again, with the field and the certification.
        let reread = Document::load_mem(&signed).unwrap();
        let catalog = reread.catalog().unwrap();
        assert!(catalog.has(b"Perms"));
        let again = inspect(&signed).unwrap();
        assert!(again.signed);
        assert_eq!(again.field_names, [b"Signature1".to_vec()].into());
    }

    #[test]
    fn an_update_written_after_a_stand_in_is_what_lopdf_writes_after_the_file() {
        // Files ending in a newline, in CR LF and in neither (lopdf then starts the update with a newline),
        // with a cross-reference table, and with cross-reference and object streams.
        let without_newline = simple_pdf();
        assert_ne!(without_newline.last(), Some(&b'\n'));
        let mut ending_in_newline = without_newline.clone();
        ending_in_newline.push(b'\n');
        let mut ending_in_crlf = without_newline.clone();
        ending_in_crlf.extend_from_slice(b"\r\n");
        let streams =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pdfs/qpdf-object-streams.pdf")).unwrap();
        for pdf in [without_newline, ending_in_newline, ending_in_crlf, streams] {
            let change = |update: &mut IncrementalDocument| {
                let catalog_id = update.get_prev_documents().trailer.get(b"Root").unwrap().as_reference().unwrap();
                update.opt_clone_object_to_new_document(catalog_id).unwrap();
                let id = update.new_document.add_object(Stream::new(Dictionary::new(), b"added".to_vec()));
                update.new_document.get_dictionary_mut(catalog_id).unwrap().set("Added", Object::Reference(id));
            };
            let document = Document::load_mem(&pdf).unwrap();
            let mut whole = IncrementalDocument::create_from(pdf.clone(), without_stream_contents(document.clone()));
            change(&mut whole);
            let mut expected = Vec::new();
            whole.save_to(&mut expected).unwrap();

            let mut update = update_of(&pdf, document);
            change(&mut update);
            let mut written = pdf.clone();
            append_update(&mut update, &mut written).unwrap();
            assert_eq!(written, expected);
            assert!(written.len() > pdf.len() + 100);
            // An update made from a file of another length is refused, not written at the wrong offsets.
            assert_eq!(append_update(&mut update, &mut pdf[1..].to_vec()), Err(PdfRefusal::Damaged));
        }
    }

    #[test]
    fn a_second_signature_approves_under_its_own_name_and_cannot_certify() {
        let pdf = simple_pdf();
        let first = prepare(pdf.clone(), &fields(2048)).unwrap().finish(&[0x30, 0x00]).unwrap();
        let refused = prepare(first.clone(), &SignatureFields { certify: Some(true), ..fields(2048) }).unwrap_err();
        assert_eq!(refused, PdfRefusal::CertifyAfterSignature);
        let second = prepare(first.clone(), &fields(2048)).unwrap();
        assert!(!second.certifies);
        let signed = second.finish(&[0x30, 0x00]).unwrap();
        assert_eq!(&signed[..first.len()], &first[..]);
        let names = inspect(&signed).unwrap().field_names;
        assert_eq!(names, [b"Signature1".to_vec(), b"Signature2".to_vec()].into());
    }

    #[test]
    fn what_cannot_be_signed_is_refused() {
        assert!(matches!(prepare(b"hello, not a PDF".to_vec(), &fields(16)), Err(PdfRefusal::NotPdf(_))));
        assert!(matches!(prepare(b"%PDF-1.7\ngarbage".to_vec(), &fields(16)), Err(PdfRefusal::NotPdf(_))));
        // Certified with no changes allowed.
        let pdf = simple_pdf();
        let certified = prepare(pdf.clone(), &fields(64)).unwrap().finish(&[0x30, 0x00]).unwrap();
        let mut locked = certified.clone();
        let params = locked.windows(15).rposition(|w| w == b"TransformParams").expect("the DocMDP parameters");
        let at = params + locked[params..].windows(4).position(|w| w == b"/P 2").expect("the DocMDP permissions");
        locked[at + 3] = b'1';
        assert_eq!(prepare(locked.clone(), &fields(64)).unwrap_err(), PdfRefusal::NoChangesAllowed);
        let visible = |page, rect| SignatureFields { visible: Some(Visible { page, rect }), ..fields(64) };
        assert_eq!(prepare(pdf.clone(), &visible(2, [0.0, 0.0, 10.0, 10.0])).unwrap_err(), PdfRefusal::NoSuchPage(2));
        assert_eq!(prepare(pdf.clone(), &visible(1, [10.0, 0.0, 10.0, 10.0])).unwrap_err(), PdfRefusal::BadRectangle);
        assert!(prepare(pdf.clone(), &visible(1, [50.0, 50.0, 250.0, 110.0])).is_ok());
        // A CMS larger than the room kept.
        let small = prepare(pdf.clone(), &fields(4)).unwrap();
        assert!(small.finish(&[0; 5]).is_err());
    }

    #[test]
    fn text_outside_ascii_is_utf16_in_the_dictionary_and_win_ansi_in_the_appearance() {
        assert_eq!(
            text_string("Žiga"),
            Object::String(vec![0xFE, 0xFF, 0x01, 0x7D, 0, b'i', 0, b'g', 0, b'a'], StringFormat::Hexadecimal)
        );
        assert_eq!(win_ansi("Žiga € 日"), vec![0x8E, b'i', b'g', b'a', b' ', 0x80, b' ', b'?']);
        assert_eq!(pdf_date(1_796_000_000), "D:20261130005320Z");
    }
}
