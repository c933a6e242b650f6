//! Normalising identities on the way in, so that one person on one channel is always
//! the same `(kind, value)` pair: e-mails trimmed and lower-cased, phone numbers (and
//! WhatsApp ids) in E.164 by the libphonenumber rules, social handles without `@` and
//! lower-cased. A value that cannot be normalised is refused with the reason.

use entity::enums::IdentityKind;

/// Longest identity value accepted (the column is 320 characters).
const MAX_VALUE_LEN: usize = 320;

/// Normalises `raw` for `kind`, or says why it is not a valid identity of that kind.
pub fn normalize(kind: IdentityKind, raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > MAX_VALUE_LEN {
        return Err(format!("must be at most {MAX_VALUE_LEN} characters"));
    }
    match kind {
        IdentityKind::Email => {
            crate::users::normalize_email(trimmed).ok_or_else(|| "is not a valid e-mail address".to_owned())
        }
        IdentityKind::Phone | IdentityKind::Whatsapp => phone(trimmed),
        IdentityKind::Twitter => handle(trimmed, 15, false),
        IdentityKind::Instagram => handle(trimmed, 30, true),
        IdentityKind::Facebook => handle(trimmed, 50, true),
        IdentityKind::Web | IdentityKind::ExternalId => {
            if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err("must not contain spaces or control characters".into())
            } else {
                Ok(trimmed.to_owned())
            }
        }
    }
}

/// E.164 (`+447700900123`). Numbers must be international: a leading `+` or `00`.
fn phone(raw: &str) -> Result<String, String> {
    let international = match raw.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => raw.to_owned(),
    };
    if !international.starts_with('+') {
        return Err("must be in international format, e.g. +44 20 7946 0958".into());
    }
    let number = phonenumber::parse(None, &international).map_err(|_| "is not a phone number".to_owned())?;
    if !phonenumber::is_valid(&number) {
        return Err("is not a valid phone number".into());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// A social handle: without a leading `@`, lower-case, letters, digits, `_` (and `.`
/// where the network allows it), at most `max` characters.
fn handle(raw: &str, max: usize, dots: bool) -> Result<String, String> {
    let h = raw.strip_prefix('@').unwrap_or(raw).to_lowercase();
    if h.is_empty() || h.chars().count() > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    let ok = h.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || (dots && c == '.'));
    if !ok {
        let allowed = if dots { "letters, digits, `_` and `.`" } else { "letters, digits and `_`" };
        return Err(format!("may contain only {allowed}"));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdentityKind::*;

    #[test]
    fn normalises_each_kind() {
        let cases = [
            (Email, "  Ann.Lee@Example.COM ", "ann.lee@example.com"),
            (Phone, "+44 20 7946 0958", "+442079460958"),
            (Phone, "0044 (20) 7946-0958", "+442079460958"),
            // The demo dataset's numbers are valid ones.
            (Phone, "+447700000127", "+447700000127"),
            (Whatsapp, "+1 (202) 555-0143", "+12025550143"),
            (Twitter, "@AcmeCare", "acmecare"),
            (Instagram, "Ann.Lee_", "ann.lee_"),
            (Facebook, "ann.lee.92", "ann.lee.92"),
            (Web, " device-1234 ", "device-1234"),
            (ExternalId, "CRM-0001", "CRM-0001"),
        ];
        for (kind, raw, want) in cases {
            assert_eq!(normalize(kind, raw).as_deref(), Ok(want), "{kind:?} {raw:?}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_an_identity() {
        let cases = [
            (Email, "not-an-email"),
            (Email, ""),
            (Phone, "020 7946 0958"),
            (Phone, "+44 12"),
            (Phone, "call me"),
            (Twitter, "@has space"),
            (Twitter, "much_too_long_handle"),
            (Twitter, "dots.not.allowed"),
            (Web, "has space"),
        ];
        for (kind, raw) in cases {
            assert!(normalize(kind, raw).is_err(), "{kind:?} {raw:?} should be refused");
        }
    }
}
