//! What a CSC v2 `signatures/signDoc` asks for (v2.0.0.2 §11.11): the AdES format, its baseline level
//! and how the signature is packaged. Parsed in any letter case (clients send `AdES-B-B`, `attached`,
//! `c`); written as the specification spells them.

use std::fmt;

/// `signature_format`: the AdES family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// `C`: CAdES (ETSI EN 319 122-1), a CMS SignedData.
    Cades,
    /// `P`: PAdES (ETSI EN 319 142-1), a signature inside a PDF (its CMS, for a client that embeds it).
    Pades,
}

/// `conformance_level`: the ETSI EN 319 1x2-1 baseline level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConformanceLevel {
    /// `Ades-B-B`: the signature alone.
    BB,
    /// `Ades-B-T`: with a time-stamp on the signature value from rssp's TSA.
    BT,
    /// `Ades-B-LT`: with the certificates and revocation data to validate it later.
    BLt,
    /// `Ades-B-LTA`: with an archive time-stamp over all of that.
    BLta,
}

/// `signed_envelope_property`: where the signature goes relative to what it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// CAdES: the content inside the SignedData (enveloping).
    Attached,
    /// CAdES: the SignedData without the content (a `.p7s` beside the file).
    Detached,
    /// PAdES: the first signature of the PDF, which also says what changes are allowed after it.
    Certification,
    /// PAdES: an approval signature, the usual one.
    Revision,
}

/// A value of one of the enumerations above that rssp does not know or does not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl SignatureFormat {
    /// Every format rssp makes.
    pub const ALL: [SignatureFormat; 2] = [SignatureFormat::Cades, SignatureFormat::Pades];

    /// The format named `text`, in any letter case.
    pub fn parse(text: &str) -> Result<SignatureFormat, Unsupported> {
        Self::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(text)).ok_or_else(|| Unsupported(text.into()))
    }

    /// The specification's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFormat::Cades => "C",
            SignatureFormat::Pades => "P",
        }
    }

    /// The packagings of this format, the default first (§11.11's table).
    pub fn packagings(self) -> &'static [Packaging] {
        match self {
            SignatureFormat::Cades => &[Packaging::Attached, Packaging::Detached],
            SignatureFormat::Pades => &[Packaging::Certification, Packaging::Revision],
        }
    }
}

impl ConformanceLevel {
    /// Every level, lowest first.
    pub const ALL: [ConformanceLevel; 4] =
        [ConformanceLevel::BB, ConformanceLevel::BT, ConformanceLevel::BLt, ConformanceLevel::BLta];

    /// The level named `text`, in any letter case.
    pub fn parse(text: &str) -> Result<ConformanceLevel, Unsupported> {
        Self::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(text)).ok_or_else(|| Unsupported(text.into()))
    }

    /// The specification's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConformanceLevel::BB => "Ades-B-B",
            ConformanceLevel::BT => "Ades-B-T",
            ConformanceLevel::BLt => "Ades-B-LT",
            ConformanceLevel::BLta => "Ades-B-LTA",
        }
    }

    /// Whether the signature value carries a signature time-stamp (B-T and above).
    pub fn has_signature_time_stamp(self) -> bool {
        self >= ConformanceLevel::BT
    }

    /// The time-stamps a signature at this level takes, each spending a transaction: the signature
    /// time-stamp from B-T on, and a PDF's document time-stamp at B-LTA.
    pub fn time_stamps(self) -> usize {
        match self {
            ConformanceLevel::BB => 0,
            ConformanceLevel::BT | ConformanceLevel::BLt => 1,
            ConformanceLevel::BLta => 2,
        }
    }
}

impl Packaging {
    /// Parses a packaging of `format`: one of another format (`Certification` for CAdES) is refused.
    pub fn parse(format: SignatureFormat, text: &str) -> Result<Packaging, Unsupported> {
        format
            .packagings()
            .iter()
            .copied()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| Unsupported(text.into()))
    }

    /// The specification's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Packaging::Attached => "Attached",
            Packaging::Detached => "Detached",
            Packaging::Certification => "Certification",
            Packaging::Revision => "Revision",
        }
    }
}

impl fmt::Display for SignatureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ConformanceLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Packaging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_in_any_letter_case_and_print_as_the_specification_spells_them() {
        assert_eq!(SignatureFormat::parse("c"), Ok(SignatureFormat::Cades));
        assert_eq!(SignatureFormat::parse("P").unwrap().to_string(), "P");
        assert_eq!(ConformanceLevel::parse("AdES-B-T"), Ok(ConformanceLevel::BT));
        assert_eq!(ConformanceLevel::parse("ades-b-lta").unwrap().to_string(), "Ades-B-LTA");
        assert_eq!(Packaging::parse(SignatureFormat::Cades, "detached"), Ok(Packaging::Detached));
        assert_eq!(Packaging::parse(SignatureFormat::Pades, "REVISION").unwrap().to_string(), "Revision");
    }

    #[test]
    fn formats_levels_and_packagings_rssp_does_not_make_are_refused() {
        for format in ["X", "J", "", "CAdES"] {
            assert_eq!(SignatureFormat::parse(format), Err(Unsupported(format.into())));
        }
        // The older ETSI TS baseline names are other profiles, not aliases.
        for level in ["Ades-B", "Ades-T", "B-B", "Ades-B-B "] {
            assert!(ConformanceLevel::parse(level).is_err(), "{level}");
        }
        assert!(Packaging::parse(SignatureFormat::Cades, "Parallel").is_err());
        assert!(Packaging::parse(SignatureFormat::Cades, "Certification").is_err());
        assert!(Packaging::parse(SignatureFormat::Pades, "Detached").is_err());
    }

    #[test]
    fn the_default_packaging_is_listed_first_and_levels_from_b_t_carry_a_time_stamp() {
        assert_eq!(SignatureFormat::Cades.packagings()[0], Packaging::Attached);
        assert_eq!(SignatureFormat::Pades.packagings()[0], Packaging::Certification);
        assert!(!ConformanceLevel::BB.has_signature_time_stamp());
        assert!(ConformanceLevel::BT.has_signature_time_stamp());
        assert!(ConformanceLevel::BLta.has_signature_time_stamp());
        let stamps: Vec<usize> = ConformanceLevel::ALL.iter().map(|l| l.time_stamps()).collect();
        assert_eq!(stamps, [0, 1, 1, 2], "B-LTA adds the document time-stamp");
    }
}
