//! Property tests of the contact details a person types: any text is refused or accepted without a
//! panic, and what is accepted is the normal form, which parses to itself.

use proptest::prelude::*;

use super::{Email, Phone};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_an_email_address_in_normal_form_or_refused(text in any::<String>()) {
        if let Ok(email) = Email::parse(&text) {
            let normal = email.as_str();
            prop_assert!(normal.len() <= 254 && normal.contains('@'), "{normal:?}");
            prop_assert!(normal.chars().all(|c| c.is_ascii_graphic() && !c.is_ascii_uppercase()), "{normal:?}");
            prop_assert_eq!(Email::parse(normal), Ok(email.clone()));
        }
    }

    #[test]
    fn plausible_addresses_are_accepted_lower_cased(
        local in "[A-Za-z0-9._%+-]{1,64}",
        labels in prop::collection::vec("[A-Za-z0-9-]{1,12}", 2..4),
        padding in "[ \t]{0,2}",
    ) {
        let address = format!("{local}@{}", labels.join("."));
        let email = Email::parse(&format!("{padding}{address}{padding}"));
        prop_assert_eq!(email.map(|e| e.as_str().to_string()), Ok(address.to_ascii_lowercase()));
    }

    #[test]
    fn any_text_is_a_phone_number_in_e164_or_refused(text in any::<String>()) {
        if let Ok(phone) = Phone::parse(&text) {
            let digits = phone.as_str().strip_prefix('+').expect("a leading +");
            prop_assert!((8..=15).contains(&digits.len()), "{digits:?}");
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'), "{digits:?}");
            prop_assert_eq!(Phone::parse(phone.as_str()), Ok(phone.clone()));
        }
    }

    #[test]
    fn numbers_written_with_separators_are_compacted(
        digits in "[1-9][0-9]{7,14}",
        separators in prop::collection::vec(prop::sample::select(vec!["", " ", "-", ".", "(", ")"]), 15),
    ) {
        let written: String =
            digits.chars().zip(&separators).map(|(digit, separator)| format!("{digit}{separator}")).collect();
        let phone = Phone::parse(&format!("+{written}"));
        prop_assert_eq!(phone.map(|p| p.as_str().to_string()), Ok(format!("+{digits}")));
    }

    #[test]
    fn a_hint_of_any_stored_text_keeps_its_length(text in any::<String>()) {
        prop_assert_eq!(Phone::hint(&text).chars().count(), text.chars().count());
    }
}
