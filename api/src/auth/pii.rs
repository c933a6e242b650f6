//! Personal data at field level. Callers without the right to read it (analysts, API
//! tokens without `pii:read`) still see every record and every aggregate, but
//! identifiers come back masked (`a***@example.com`, `***123`) and free text (message
//! bodies, comments, subjects, free attributes) comes back null. `Customer.piiMasked`
//! tells a client which of the two it got.

use entity::enums::{IdentityKind, Role};

use super::{Principal, Scope};

/// Whether the caller may read personal data.
pub fn can_read(principal: &Principal) -> bool {
    match principal {
        Principal::User(u) => matches!(u.role, Role::Admin | Role::Manager | Role::Agent),
        Principal::Token(_) => principal.has_scope(Scope::PiiRead),
        Principal::Anonymous(_) => false,
    }
}

fn first_char_then_stars(s: &str) -> String {
    match s.chars().next() {
        Some(c) => format!("{c}***"),
        None => String::new(),
    }
}

/// A name with each word cut to its first letter: `Ann Lee` → `A*** L***`.
pub fn mask_name(name: &str) -> String {
    name.split_whitespace().map(first_char_then_stars).collect::<Vec<_>>().join(" ")
}

/// An identity value masked by kind: e-mails keep their domain, phone numbers their
/// last three digits, everything else its first character.
pub fn mask_identity(kind: IdentityKind, value: &str) -> String {
    match kind {
        IdentityKind::Email => match value.split_once('@') {
            Some((local, domain)) => format!("{}@{domain}", first_char_then_stars(local)),
            None => first_char_then_stars(value),
        },
        IdentityKind::Phone | IdentityKind::Whatsapp => {
            let tail: String = value.chars().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect();
            format!("***{tail}")
        }
        _ => first_char_then_stars(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_a_hint() {
        assert_eq!(mask_name("Ann  Lee"), "A*** L***");
        assert_eq!(mask_identity(IdentityKind::Email, "ann.lee@example.com"), "a***@example.com");
        assert_eq!(mask_identity(IdentityKind::Phone, "+447700900123"), "***123");
        assert_eq!(mask_identity(IdentityKind::Twitter, "acmecare"), "a***");
    }
}
