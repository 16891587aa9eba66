//! Finds values that look like card numbers or credentials in text, so that a job record loses
//! them even where no rule names the field they came in.
//!
//! What is found, each at the start of a word:
//! - card numbers: 13 to 19 digits, in groups of at least 3 joined by single spaces or dashes,
//!   with the issuer prefix and length of a card scheme and a valid Luhn check digit;
//! - tokens with a known issuer prefix (`sk_live_…`, `xoxb-…`, `ghp_…`, `AKIA…`, `AIza…`, …);
//! - JSON Web Tokens (`eyJ….eyJ….…`);
//! - private keys in PEM (`-----BEGIN … PRIVATE KEY-----` to its end line);
//! - the credential after `Bearer `, `Basic ` or `Token `;
//! - the value of a URL query parameter named like a credential (`?access_token=…`, `&sig=…`);
//! - the password in a URL (`https://user:password@host`).
//!
//! Every test is on bytes, in one pass, without allocating unless something is found.

use std::ops::Range;

/// What a found value is replaced with in a job record.
pub const MASKED: &str = "[masked]";

/// Where `text` holds what looks like a card number or a credential, in order.
pub fn findings(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut hits: Vec<Range<usize>> = Vec::new();
    if bytes.len() < 8 {
        return hits;
    }
    let mut at = 0;
    while at < bytes.len() {
        match hit_at(bytes, at) {
            Some(hit) => {
                at = hit.end.max(at + 1);
                if !hit.is_empty() {
                    hits.push(hit);
                }
            }
            None => at += 1,
        }
    }
    hits
}

/// `text` with what looks like a card number or a credential replaced by `[masked]`, or `None`
/// when it holds nothing of the kind.
pub fn redact(text: &str) -> Option<String> {
    let hits = findings(text);
    if hits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for hit in hits {
        // Every range starts and ends next to an ASCII byte: a char boundary.
        out.push_str(&text[copied..hit.start]);
        out.push_str(MASKED);
        copied = hit.end;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Whether a JSON number's digits are a card number.
pub fn is_card_number(number: u64) -> bool {
    let mut digits = [0u8; 20];
    let mut count = 0;
    let mut rest = number;
    while rest > 0 {
        digits[count] = (rest % 10) as u8;
        count += 1;
        rest /= 10;
    }
    digits[..count].reverse();
    is_card(&digits[..count])
}

/// The range to mask when something starts at `at`.
fn hit_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    if bytes[at] == b'-' {
        return private_key_at(bytes, at);
    }
    if at > 0 && is_word(bytes[at - 1]) {
        return None;
    }
    let first = bytes[at];
    if first.is_ascii_digit() {
        return card_at(bytes, at);
    }
    if !first.is_ascii_alphabetic() {
        return None;
    }
    if at > 0
        && matches!(bytes[at - 1], b'?' | b'&')
        && let Some(hit) = query_secret_at(bytes, at)
    {
        return Some(hit);
    }
    if at >= 3
        && &bytes[at - 3..at] == b"://"
        && let Some(hit) = url_password_at(bytes, at)
    {
        return Some(hit);
    }
    prefixed_token_at(bytes, at)
        .or_else(|| web_token_at(bytes, at))
        .or_else(|| scheme_credential_at(bytes, at))
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn is_token(byte: u8) -> bool {
    is_word(byte) || byte == b'-'
}

/// A card number starting at `at`: its range, separators included.
fn card_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut group = 0;
    let mut end = at;
    let mut index = at;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte.is_ascii_digit() {
            if count == digits.len() {
                return None;
            }
            digits[count] = byte - b'0';
            count += 1;
            group += 1;
            index += 1;
            end = index;
        } else if matches!(byte, b' ' | b'-')
            && group >= 3
            && bytes.get(index + 1).is_some_and(u8::is_ascii_digit)
        {
            group = 0;
            index += 1;
        } else {
            break;
        }
    }
    let ends_word = bytes.get(end).is_none_or(|byte| !is_word(*byte));
    (ends_word && is_card(&digits[..count])).then_some(at..end)
}

/// Whether these digits have a card scheme's prefix and length, and a valid check digit.
fn is_card(digits: &[u8]) -> bool {
    let length = digits.len();
    if !(13..=19).contains(&length) {
        return false;
    }
    let prefix = |width: usize| {
        digits[..width]
            .iter()
            .fold(0u32, |number, digit| number * 10 + u32::from(*digit))
    };
    let scheme = match digits[0] {
        4 => matches!(length, 13 | 16 | 19),
        5 => {
            (51..=55).contains(&prefix(2)) && length == 16
                || matches!(prefix(4), 5018 | 5020 | 5038 | 5893)
        }
        2 => {
            length == 16
                && ((2221..=2720).contains(&prefix(4)) || (2200..=2204).contains(&prefix(4)))
        }
        3 => {
            matches!(prefix(2), 34 | 37) && length == 15
                || (3528..=3589).contains(&prefix(4)) && length >= 16
                || ((300..=305).contains(&prefix(3)) || matches!(prefix(2), 36 | 38 | 39))
                    && length >= 14
        }
        6 => {
            prefix(4) == 6011
                || (644..=649).contains(&prefix(3))
                || matches!(prefix(2), 62 | 65)
                || matches!(prefix(4), 6304 | 6759 | 6761 | 6762 | 6763)
        }
        _ => false,
    };
    scheme && luhn_valid(digits)
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let digit = u32::from(*digit);
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Prefixes of credentials issued by well-known services, and how many characters must
/// follow for the text to be one.
const TOKEN_PREFIXES: &[(&[u8], usize)] = &[
    (b"sk_live_", 8),
    (b"sk_test_", 8),
    (b"rk_live_", 8),
    (b"rk_test_", 8),
    (b"whsec_", 8),
    (b"xoxb-", 8),
    (b"xoxp-", 8),
    (b"xoxa-", 8),
    (b"xoxe-", 8),
    (b"xoxr-", 8),
    (b"xoxs-", 8),
    (b"xapp-", 8),
    (b"ghp_", 20),
    (b"gho_", 20),
    (b"ghu_", 20),
    (b"ghs_", 20),
    (b"ghr_", 20),
    (b"github_pat_", 20),
    (b"glpat-", 16),
    (b"AKIA", 16),
    (b"ASIA", 16),
    (b"AIza", 30),
    (b"sk-", 20),
    (b"shpat_", 16),
    (b"shpss_", 16),
    (b"npm_", 30),
    (b"hf_", 30),
];

fn prefixed_token_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    let rest = &bytes[at..];
    let (prefix, least) = TOKEN_PREFIXES
        .iter()
        .find(|(prefix, _)| rest.starts_with(prefix))?;
    let end = token_end(bytes, at + prefix.len(), is_token);
    (end - at - prefix.len() >= *least).then_some(at..end)
}

/// A JSON Web Token: three base64url parts joined by dots, the first two JSON objects.
fn web_token_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    if !bytes[at..].starts_with(b"eyJ") {
        return None;
    }
    let end = token_end(bytes, at, |byte| is_token(byte) || byte == b'.');
    let parts: Vec<&[u8]> = bytes[at..end].split(|byte| *byte == b'.').collect();
    let shaped = parts.len() == 3
        && parts[1].starts_with(b"eyJ")
        && parts.iter().all(|part| part.len() >= 4);
    shaped.then_some(at..end)
}

/// The credential after an HTTP authorization scheme, when it looks like one: 8 characters or
/// more with a digit or a symbol of base64 (so that `Basic information` stays).
fn scheme_credential_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    let rest = &bytes[at..];
    let scheme = [&b"Bearer "[..], b"Basic ", b"Token "]
        .into_iter()
        .find(|scheme| rest.starts_with(scheme))?;
    let start = at + scheme.len();
    let end = token_end(bytes, start, |byte| {
        is_token(byte) || matches!(byte, b'.' | b'~' | b'+' | b'/' | b'=')
    });
    let credential = &bytes[start..end];
    let looks_made = credential
        .iter()
        .any(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'+' | b'/' | b'=' | b'_'));
    (credential.len() >= 8 && looks_made).then_some(start..end)
}

/// Query parameters whose value is a credential.
const SECRET_PARAMETERS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "sig",
    "signature",
    "auth",
    "x-amz-signature",
    "x-amz-security-token",
];

/// The value of `name=value` after `?` or `&`, when the name is a credential's.
fn query_secret_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    let equals = at + bytes[at..].iter().take(24).position(|byte| *byte == b'=')?;
    let name = &bytes[at..equals];
    let named = SECRET_PARAMETERS
        .iter()
        .any(|secret| secret.as_bytes().eq_ignore_ascii_case(name));
    if !named {
        return None;
    }
    let start = equals + 1;
    let end = token_end(bytes, start, |byte| {
        !byte.is_ascii_whitespace() && !matches!(byte, b'&' | b'#' | b'"' | b'\'' | b'<' | b'>')
    });
    (end - start >= 4).then_some(start..end)
}

/// The password of `user:password@` right after `://`.
fn url_password_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    let end = token_end(bytes, at, |byte| {
        !byte.is_ascii_whitespace() && !matches!(byte, b'/' | b'?' | b'#' | b'@' | b'"' | b'\'')
    });
    if bytes.get(end) != Some(&b'@') {
        return None;
    }
    let colon = at + bytes[at..end].iter().position(|byte| *byte == b':')?;
    (colon + 1 < end).then_some(colon + 1..end)
}

/// A private key in PEM, from its `-----BEGIN` line to the end of its `-----END` line (or of
/// the text, when it was cut).
fn private_key_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let rest = &bytes[at..];
    if !rest.starts_with(BEGIN) {
        return None;
    }
    let header_end = find(rest, b"-----", BEGIN.len())?;
    // Certificates and public keys are not secrets.
    find(&rest[..header_end], b"PRIVATE KEY", 0)?;
    let end = match find(rest, b"-----END ", header_end) {
        Some(end_line) => find(rest, b"-----", end_line + 9).map_or(rest.len(), |close| close + 5),
        None => rest.len(),
    };
    Some(at..at + end)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|position| from + position)
}

fn token_end(bytes: &[u8], from: usize, belongs: impl Fn(u8) -> bool) -> usize {
    bytes[from..]
        .iter()
        .position(|byte| !belongs(*byte))
        .map_or(bytes.len(), |length| from + length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        redact(text).unwrap_or_else(|| text.to_owned())
    }

    #[test]
    fn card_numbers_are_found_with_or_without_separators() {
        assert_eq!(masked("card 4111111111111111 ok"), "card [masked] ok");
        assert_eq!(masked("4111 1111 1111 1111"), "[masked]");
        assert_eq!(masked("amex 3782-822463-10005."), "amex [masked].");
        assert_eq!(masked("mc:5555555555554444"), "mc:[masked]");
        assert_eq!(masked("new mc 2223003122003222"), "new mc [masked]");
        assert!(is_card_number(4_012_888_888_881_881));
        assert!(!is_card_number(4_012_888_888_881_882));
    }

    #[test]
    fn numbers_that_are_not_cards_stay() {
        for text in [
            "4111111111111112 fails its check digit",
            "timestamp 1733328000000 in milliseconds",
            "order 12345678901234567890123 is too long",
            "id a4111111111111111 is inside a word",
            "phone +1 415-555-0100, date 2026-12-04 16:03:25",
            "10 20 30 40 50 60 70 80",
        ] {
            assert_eq!(redact(text), None, "{text}");
        }
        assert!(!is_card_number(1_733_328_000_000));
    }

    #[test]
    fn issued_tokens_and_web_tokens_are_found() {
        assert_eq!(
            masked("key sk_live_51HxyzABCDEF0123 set"),
            "key [masked] set"
        );
        assert_eq!(masked("slack xoxb-1234-5678-abcdefgh"), "slack [masked]");
        assert_eq!(masked("AKIAIOSFODNN7EXAMPLE"), "[masked]");
        assert_eq!(
            masked("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end"),
            "jwt [masked] end"
        );
        assert_eq!(redact("the sk_ prefix alone"), None);
        assert_eq!(redact("a task-force meeting"), None);
    }

    #[test]
    fn credentials_after_schemes_in_urls_and_keys_are_found() {
        assert_eq!(
            masked("Authorization: Bearer abc.def-123"),
            "Authorization: Bearer [masked]"
        );
        assert_eq!(masked("Basic dXNlcjpwYXNz="), "Basic [masked]");
        assert_eq!(redact("Basic information about Bearer tokens"), None);
        assert_eq!(
            masked("GET https://api.example.com/x?user=ann&access_token=abcd1234&page=2"),
            "GET https://api.example.com/x?user=ann&access_token=[masked]&page=2"
        );
        assert_eq!(
            masked("postgres://weft:hunter22@db:5432/weft"),
            "postgres://weft:[masked]@db:5432/weft"
        );
        assert_eq!(redact("see https://example.com/a:b@c"), None);
        let pem = "k: -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(masked(pem), "k: [masked]\n");
        assert_eq!(
            redact("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
            None
        );
    }

    #[test]
    fn text_around_a_finding_is_kept_whole() {
        assert_eq!(
            masked("née 4111111111111111 — ünïcode"),
            "née [masked] — ünïcode"
        );
    }
}
