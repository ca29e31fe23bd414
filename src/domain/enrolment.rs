//! Rules for what a person enters when enrolling and caring for the account: e-mail address, phone
//! number, names, the password policy, one-time codes, invoice data and prices.
//!
//! A refused value comes back as the rule it breaks, worded for the person; the service names the
//! request field it came in.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// An e-mail address, lower-cased. Deliberately simple: one `@`, a dot in the domain, no spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, &'static str> {
        let text = text.trim().to_ascii_lowercase();
        let valid = text.len() <= 254
            && text.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            })
            && text.chars().all(|c| c.is_ascii_graphic());
        if valid {
            Ok(Email(text))
        } else {
            Err("not a valid e-mail address")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 form: `+` and 8 to 15 digits (spaces, dashes and dots are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(text: &str) -> Result<Phone, &'static str> {
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let digits = compact.strip_prefix('+').unwrap_or_default();
        if (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0') {
            Ok(Phone(compact))
        } else {
            Err("an international number like +38640123456")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the country code and last two digits hidden, for answers and logs.
    /// Counted in characters, so that a stored value that is not a parsed number cannot make it panic.
    pub fn hint(number: &str) -> String {
        let chars: Vec<char> = number.chars().collect();
        let keep_start = chars.len().min(4);
        let keep_end = chars.len().saturating_sub(2).max(keep_start);
        let start: String = chars[..keep_start].iter().collect();
        let end: String = chars[keep_end..].iter().collect();
        format!("{start}{}{end}", "*".repeat(keep_end - keep_start))
    }
}

/// A given name or surname as it goes into the certificate subject: letters, spaces, dots and dashes.
pub fn parse_name(text: &str) -> Result<String, &'static str> {
    let name = text.trim();
    let allowed = |c: char| c.is_alphabetic() || c == ' ' || c == '-' || c == '.';
    if name.is_empty() || name.chars().count() > 64 || !name.chars().all(allowed) {
        return Err("1 to 64 letters, spaces, dots or dashes");
    }
    Ok(name.to_string())
}

/// The officially assigned ISO 3166-1 alpha-2 codes (from Debian's iso-codes), space separated.
const ISO_3166_ALPHA_2: &str =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS \
     BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE \
     EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM \
     HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC \
     LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA \
     NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
     SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO \
     TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// A person's country as it goes into the certificate subject (countryName, ETSI EN 319 412-2 §4.2.4):
/// an officially assigned ISO 3166-1 alpha-2 code, upper case.
pub fn parse_country(text: &str) -> Result<String, &'static str> {
    let code = text.trim();
    let known = code.len() == 2
        && code.chars().all(|c| c.is_ascii_uppercase())
        && ISO_3166_ALPHA_2.split_ascii_whitespace().any(|c| c == code);
    if !known {
        return Err("a two-letter ISO 3166-1 country code in capitals, like SI");
    }
    Ok(code.to_string())
}

/// The password policy, stated to people when they choose one.
pub const PASSWORD_POLICY: &str =
    "at least 12 and at most 128 characters, with at least one letter and one digit, not containing the e-mail name";

pub fn check_password(password: &str, email: Option<&str>) -> Result<(), &'static str> {
    let length = password.chars().count();
    let has_letter = password.chars().any(char::is_alphabetic);
    let has_digit = password.chars().any(|c| c.is_ascii_digit());
    let local = email.and_then(|e| e.split('@').next()).filter(|l| l.len() >= 3);
    let contains_email = local.is_some_and(|l| password.to_lowercase().contains(&l.to_lowercase()));
    if (12..=128).contains(&length) && has_letter && has_digit && !contains_email {
        Ok(())
    } else {
        Err(PASSWORD_POLICY)
    }
}

/// A six-digit one-time code for SMS or e-mail.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000))
}

/// Invoice data of an order: a private person or a company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Invoice {
    Person {
        name: String,
        address: String,
        postal_code: String,
        city: String,
        country: String,
    },
    Company {
        company_name: String,
        /// VAT identification number with its country prefix, e.g. SI12345678.
        vat_id: String,
        address: String,
        postal_code: String,
        city: String,
        country: String,
    },
}

/// A field of the invoice data, named in a refusal of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceField {
    /// `name` (a person's invoice).
    Name,
    /// `company_name`.
    CompanyName,
    /// `vat_id`.
    VatId,
    /// `address`.
    Address,
    /// `postal_code`.
    PostalCode,
    /// `city`.
    City,
    /// `country`.
    Country,
}

impl InvoiceField {
    /// The field's path in a request body: `invoice.<field>`.
    pub fn path(self) -> &'static str {
        match self {
            InvoiceField::Name => "invoice.name",
            InvoiceField::CompanyName => "invoice.company_name",
            InvoiceField::VatId => "invoice.vat_id",
            InvoiceField::Address => "invoice.address",
            InvoiceField::PostalCode => "invoice.postal_code",
            InvoiceField::City => "invoice.city",
            InvoiceField::Country => "invoice.country",
        }
    }
}

impl Invoice {
    /// The first field whose value breaks its rule, with the rule.
    pub fn check(&self) -> Result<(), (InvoiceField, String)> {
        let text = |value: &str, field: InvoiceField, max: usize| -> Result<(), (InvoiceField, String)> {
            let count = value.trim().chars().count();
            if count == 0 || count > max || value.chars().any(|c| c.is_control()) {
                Err((field, format!("1 to {max} characters")))
            } else {
                Ok(())
            }
        };
        let country = |value: &str| -> Result<(), (InvoiceField, String)> {
            if value.len() == 2 && value.chars().all(|c| c.is_ascii_uppercase()) {
                Ok(())
            } else {
                Err((InvoiceField::Country, "a two-letter ISO 3166 code like SI".to_string()))
            }
        };
        match self {
            Invoice::Person { name, address, postal_code, city, country: c } => {
                text(name, InvoiceField::Name, 128)?;
                text(address, InvoiceField::Address, 200)?;
                text(postal_code, InvoiceField::PostalCode, 16)?;
                text(city, InvoiceField::City, 100)?;
                country(c)
            }
            Invoice::Company { company_name, vat_id, address, postal_code, city, country: c } => {
                text(company_name, InvoiceField::CompanyName, 200)?;
                // Checked character by character: a byte index could fall inside a multi-byte
                // character (`"Sé12345"`) and panic.
                let mut chars = vat_id.chars();
                let prefix: String = chars.by_ref().take(2).collect();
                let number = chars.as_str();
                let vat_ok = prefix.chars().count() == 2
                    && prefix.chars().all(|ch| ch.is_ascii_uppercase())
                    && (2..=13).contains(&number.chars().count())
                    && number.chars().all(|ch| ch.is_ascii_alphanumeric());
                if !vat_ok {
                    return Err((
                        InvoiceField::VatId,
                        "a VAT number with its country prefix, like SI12345678".to_string(),
                    ));
                }
                text(address, InvoiceField::Address, 200)?;
                text(postal_code, InvoiceField::PostalCode, 16)?;
                text(city, InvoiceField::City, 100)?;
                country(c)
            }
        }
    }
}

/// VAT on a net price, rounded half up to the cent.
pub fn vat_cents(net_cents: i64, vat_percent: i64) -> i64 {
    (net_cents * vat_percent + 50) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_details_are_normalised_or_refused() {
        assert_eq!(Email::parse(" Ana@Example.ORG ").unwrap().as_str(), "ana@example.org");
        assert!(Email::parse("ana@localhost").is_err());
        assert!(Email::parse("a b@example.org").is_err());
        assert_eq!(Phone::parse("+386 40 123-456").unwrap().as_str(), "+38640123456");
        assert!(Phone::parse("040123456").is_err());
        assert_eq!(Phone::hint("+38640123456"), "+386******56");
    }

    /// Multi-byte characters where a byte index would split one (the fuzzer's `"Sé12345"`): every
    /// check answers, none panics.
    #[test]
    fn multi_byte_input_is_refused_or_accepted_without_panic() {
        let company = |vat_id: &str, name: &str| Invoice::Company {
            company_name: name.into(),
            vat_id: vat_id.into(),
            address: "Slovenska 1".into(),
            postal_code: "1000".into(),
            city: "Ljubljana".into(),
            country: "SI".into(),
        };
        let cases: &[(&str, &str, bool)] = &[
            ("Sé12345", "Novak d.o.o.", false),
            ("é", "Novak d.o.o.", false),
            ("éé12345", "Novak d.o.o.", false),
            ("S€", "Novak d.o.o.", false),
            ("SI1234€", "Novak d.o.o.", false),
            ("SI€1234", "Novak d.o.o.", false),
            ("🇸🇮12345678", "Novak d.o.o.", false),
            ("S", "Novak d.o.o.", false),
            ("", "Novak d.o.o.", false),
            ("SI12345678", "Žabnik in Čebela d.o.o. 日本", true),
            ("SI12345678", "Novak d.o.o.", true),
            ("DE1234567890123", "Novak d.o.o.", true),
            ("DE12345678901234", "Novak d.o.o.", false),
        ];
        for (vat_id, name, ok) in cases {
            assert_eq!(company(vat_id, name).check().is_ok(), *ok, "vat_id {vat_id:?}, name {name:?}");
        }
        // A 200-character name counts characters, not bytes.
        assert!(company("SI12345678", &"Ž".repeat(200)).check().is_ok());
        assert!(company("SI12345678", &"Ž".repeat(201)).check().is_err());
        for (number, hint) in [
            ("+38640123456", "+386******56"),
            ("+é", "+é"),
            ("ééééééé", "éééé*éé"),
            ("+386é0123€5", "+386*****€5"),
            ("", ""),
        ] {
            assert_eq!(Phone::hint(number), hint, "{number:?}");
        }
    }

    #[test]
    fn password_policy() {
        assert!(check_password("short1", None).is_err());
        assert!(check_password("no digits in this one", None).is_err());
        assert!(check_password("ana.novak 2026 secret", Some("ana.novak@example.org")).is_err());
        assert!(check_password("Tour-password-2026", Some("ana@example.org")).is_ok());
    }

    #[test]
    fn invoices_are_checked_and_vat_rounds_half_up() {
        let company = Invoice::Company {
            company_name: "Novak d.o.o.".into(),
            vat_id: "SI1234".into(),
            address: "Slovenska 1".into(),
            postal_code: "1000".into(),
            city: "Ljubljana".into(),
            country: "SI".into(),
        };
        assert!(company.check().is_ok());
        let Invoice::Company { company_name, address, postal_code, city, country, .. } = company else {
            unreachable!()
        };
        let bad = Invoice::Company { vat_id: "12345678".into(), company_name, address, postal_code, city, country };
        assert_eq!(bad.check().unwrap_err().0, InvoiceField::VatId);
        assert_eq!(vat_cents(3900, 22), 858);
        assert_eq!(vat_cents(5, 50), 3);
    }

    #[test]
    fn countries_are_assigned_iso_3166_codes() {
        assert_eq!(parse_country(" SI ").unwrap(), "SI");
        assert_eq!(parse_country("ZW").unwrap(), "ZW");
        assert_eq!(parse_country("AD").unwrap(), "AD");
        for bad in ["si", "XX", "SVN", "", "S", "EL", "UK"] {
            assert!(parse_country(bad).unwrap_err().contains("country"), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod proptests;
