//! Personal data at field level. Callers without the right to read it (analysts, API
//! tokens without `pii:read`) still see every record and every aggregate, but
//! identifiers come back masked (`a***@example.com`, `***123`) and free text (message
//! bodies, comments, subjects, free attributes) comes back null. `Customer.piiMasked`
//! tells a client which of the two it got.

use entity::enums::{IdentityKind, Role};

use super::{Principal, Scope};
use crate::error::AppError;

/// Whether the caller may read personal data.
pub fn can_read(principal: &Principal) -> bool {
    match principal {
        Principal::User(u) => matches!(u.role, Role::Admin | Role::Manager | Role::Agent),
        Principal::Token(_) => principal.has_scope(Scope::PiiRead),
        Principal::Anonymous(_) => false,
    }
}

/// Ways of finding customers by their personal values. Matching is reading: a caller
/// who sees `a***@example.com` but may search by prefix grows the prefix a character at
/// a time and watches whether a customer it knows stays in the answer (a few hundred
/// requests spell out the address); an exact lookup confirms any guess; an order by
/// name places a masked name among names the caller knows (and its cursors carry the
/// name). So each needs the right to read personal data, like the values themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalMatch {
    /// `customers(filter: {search})`: a prefix of a name or of any identity value.
    Search,
    /// `customers(orderBy: {field: NAME})`.
    OrderByName,
    /// `customerByIdentity(kind, value)`: an exact identity value.
    IdentityLookup,
}

impl PersonalMatch {
    pub const ALL: [PersonalMatch; 3] =
        [PersonalMatch::Search, PersonalMatch::OrderByName, PersonalMatch::IdentityLookup];

    /// The argument, as a client would name it in the error's path.
    pub fn argument(self) -> &'static [&'static str] {
        match self {
            PersonalMatch::Search => &["filter", "search"],
            PersonalMatch::OrderByName => &["orderBy", "field"],
            PersonalMatch::IdentityLookup => &["value"],
        }
    }
}

/// Refuses a match on personal values (`FORBIDDEN`) to a caller who may not read them.
pub fn may_match(principal: &Principal, how: PersonalMatch) -> Result<(), AppError> {
    if can_read(principal) {
        return Ok(());
    }
    Err(AppError::forbidden(format!(
        "`{}` matches on personal data, which this caller sees masked: it needs a role that reads personal \
         data or a token with pii:read",
        how.argument().join(".")
    )))
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

    /// Who may match on personal values: exactly who may read them.
    #[test]
    fn only_readers_of_personal_data_match_on_it() {
        let (user, token) = (Principal::test_user, Principal::test_token);
        let callers = [
            ("anonymous", Principal::Anonymous(None), false),
            ("admin", user(Role::Admin), true),
            ("manager", user(Role::Manager), true),
            ("agent", user(Role::Agent), true),
            ("analyst", user(Role::Analyst), false),
            ("token customers:read", token(&[Scope::CustomersRead]), false),
            (
                "token every scope but pii:read",
                token(&Scope::ALL.map(|s| if s == Scope::PiiRead { Scope::CustomersRead } else { s })),
                false,
            ),
            ("token customers:read pii:read", token(&[Scope::CustomersRead, Scope::PiiRead]), true),
        ];
        for (who, principal, allowed) in &callers {
            for how in PersonalMatch::ALL {
                let decision = may_match(principal, how);
                assert_eq!(decision.is_ok(), *allowed, "{how:?} for {who}");
                if let Err(e) = decision {
                    assert_eq!(e.code(), "FORBIDDEN", "{how:?} for {who}");
                }
            }
        }
    }

    #[test]
    fn masks_keep_only_a_hint() {
        assert_eq!(mask_name("Ann  Lee"), "A*** L***");
        assert_eq!(mask_identity(IdentityKind::Email, "ann.lee@example.com"), "a***@example.com");
        assert_eq!(mask_identity(IdentityKind::Phone, "+447700900123"), "***123");
        assert_eq!(mask_identity(IdentityKind::Twitter, "acmecare"), "a***");
    }
}
