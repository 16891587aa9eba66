//! Sharing a recipe without what belongs to its workspace or to people: connection names,
//! secrets, emails, phone numbers, people's names and URLs that carry a token are replaced by
//! placeholders (`__share_email_1__`) that whoever imports the recipe fills in.
//!
//! Emails, phone numbers, secrets and URLs are found anywhere in the text, comments and
//! descriptions included; connection names where a `connection` is named, and people's names
//! as the literal value of a field named like one (`name`, `owner`, `contact`, …) in `vars`,
//! inputs or anywhere else.

use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Range;

use crate::detect;

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Connection,
    Secret,
    UrlWithToken,
    Email,
    Phone,
    Name,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connection => "connection",
            Kind::Secret => "secret",
            Kind::UrlWithToken => "url",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Name => "name",
        }
    }

    /// What the importer is asked for.
    fn hint(self) -> &'static str {
        match self {
            Kind::Connection => "the name of one of your connections",
            Kind::Secret => "a credential of yours (better: keep it in a connection)",
            Kind::UrlWithToken => "a URL of yours, with its token",
            Kind::Email => "an email address",
            Kind::Phone => "a phone number",
            Kind::Name => "a person's name",
        }
    }
}

/// One value taken out of the recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// As it stands in the shared text, such as `__share_email_1__`.
    pub placeholder: String,
    pub kind: Kind,
    /// The value removed: shown to whoever shares, never kept with the shared recipe.
    pub value: String,
    /// The lines (from 1) where it was.
    pub lines: Vec<usize>,
}

/// A placeholder of a shared recipe and what to fill it with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Placeholder {
    pub name: String,
    pub kind: String,
    pub hint: String,
}

/// A recipe made fit to share.
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    pub source: String,
    pub findings: Vec<Finding>,
}

impl Shared {
    pub fn placeholders(&self) -> Vec<Placeholder> {
        self.findings
            .iter()
            .map(|finding| Placeholder {
                name: finding.placeholder.clone(),
                kind: finding.kind.as_str().to_owned(),
                hint: finding.kind.hint().to_owned(),
            })
            .collect()
    }
}

/// Field names whose literal text value is taken for a person's name.
const NAME_FIELDS: &[&str] = &[
    "name",
    "full_name",
    "first_name",
    "last_name",
    "contact",
    "contact_name",
    "owner",
    "assignee",
    "recipient",
    "recipient_name",
    "customer",
    "customer_name",
    "author",
    "signature",
];

/// The recipe's text with every finding replaced by its placeholder; the error says why the
/// text is not a recipe (it must parse as YAML or JSON).
pub fn share(source: &str) -> Result<Shared, String> {
    let parsed: Value = serde_saphyr::from_str(source)
        .map_err(|error| format!("the recipe cannot be read: {error}"))?;
    let mut found: BTreeMap<(Kind, String), ()> = BTreeMap::new();
    let mut literals = Vec::new();
    literals_of(&parsed, None, &mut literals);
    for (key, text) in &literals {
        if *key == Some("connection") {
            found.insert((Kind::Connection, text.clone()), ());
        } else if key.is_some_and(is_name_field) && looks_like_a_name(text) {
            found.insert((Kind::Name, text.clone()), ());
        }
    }
    for (kind, range) in text_findings(source) {
        found.insert((kind, source[range].to_owned()), ());
    }
    // Longest first, so that a URL goes whole before the token inside it.
    let mut values: Vec<(Kind, String)> = found.into_keys().collect();
    values.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.cmp(b)));
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut shared = source.to_owned();
    let mut findings = Vec::new();
    for (kind, value) in values {
        let lines = lines_of(&shared, &value);
        if lines.is_empty() {
            continue;
        }
        let count = counts.entry(kind).or_insert(0);
        *count += 1;
        let placeholder = format!("__share_{}_{count}__", kind.as_str());
        shared = replace_tokens(&shared, &value, &placeholder);
        findings.push(Finding {
            placeholder,
            kind,
            value,
            lines,
        });
    }
    findings.sort_by(|a, b| a.lines.first().cmp(&b.lines.first()));
    Ok(Shared {
        source: shared,
        findings,
    })
}

/// Fills a shared recipe's placeholders; the error names those without a value.
pub fn fill(shared: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut missing = Vec::new();
    let mut filled = shared.to_owned();
    for placeholder in placeholders_in(shared) {
        match values.get(&placeholder) {
            Some(value) => filled = filled.replace(&placeholder, value),
            None => missing.push(placeholder),
        }
    }
    if missing.is_empty() {
        Ok(filled)
    } else {
        Err(format!("no value for {}", missing.join(", ")))
    }
}

/// The placeholders of a shared text, each once, in order.
pub fn placeholders_in(shared: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = shared;
    while let Some(start) = rest.find("__share_") {
        let after = &rest[start + 8..];
        let Some(end) = after.find("__") else { break };
        let name = &after[..end];
        if !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            let placeholder = format!("__share_{name}__");
            if !found.contains(&placeholder) {
                found.push(placeholder);
            }
        }
        rest = &after[end + 2..];
    }
    found
}

fn is_name_field(key: &str) -> bool {
    NAME_FIELDS
        .iter()
        .any(|name| name.eq_ignore_ascii_case(key))
}

/// Two to four words of letters, each starting with a capital: `Ann Smith`, `José da Silva`.
fn looks_like_a_name(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    (2..=4).contains(&words.len())
        && words
            .iter()
            .any(|word| word.chars().next().is_some_and(char::is_uppercase))
        && words.iter().all(|word| {
            word.chars()
                .all(|c| c.is_alphabetic() || c == '-' || c == '\'' || c == '.')
        })
}

/// Every literal text of the recipe with the key it is the value of (`None` in a list).
fn literals_of<'v>(
    value: &'v Value,
    key: Option<&'v str>,
    out: &mut Vec<(Option<&'v str>, String)>,
) {
    match value {
        Value::String(text) => {
            let literal = !text.contains("{{") && !text.contains("{%");
            if literal {
                out.push((key, text.clone()));
            }
        }
        Value::Array(items) => items.iter().for_each(|item| literals_of(item, key, out)),
        Value::Object(map) => map
            .iter()
            .for_each(|(key, item)| literals_of(item, Some(key), out)),
        _ => {}
    }
}

/// Emails, phone numbers, secrets and URLs carrying a token, anywhere in the text.
fn text_findings(text: &str) -> Vec<(Kind, Range<usize>)> {
    let mut found = Vec::new();
    for url in urls(text) {
        if url_has_token(&text[url.clone()]) {
            found.push((Kind::UrlWithToken, url));
        }
    }
    found.extend(
        detect::findings(text)
            .into_iter()
            .map(|range| (Kind::Secret, range)),
    );
    found.extend(emails(text).into_iter().map(|range| (Kind::Email, range)));
    found.extend(phones(text).into_iter().map(|range| (Kind::Phone, range)));
    found
}

fn urls(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    for scheme in ["https://", "http://"] {
        let mut from = 0;
        while let Some(start) = text[from..].find(scheme).map(|at| from + at) {
            let end = text[start..]
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, '"' | '\'' | '>' | '<' | ',' | ']' | '}' | '`')
                })
                .map_or(text.len(), |length| start + length);
            found.push(start..end);
            from = end;
        }
    }
    found
}

/// A URL that is a credential by itself: a secret in it, or a webhook of a known service.
fn url_has_token(url: &str) -> bool {
    const WEBHOOKS: &[&str] = &[
        "hooks.slack.com/",
        "discord.com/api/webhooks/",
        "discordapp.com/api/webhooks/",
        "outlook.office.com/webhook",
        "webhook.office.com/",
    ];
    WEBHOOKS.iter().any(|hook| url.contains(hook)) || !detect::findings(url).is_empty()
}

fn emails(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let local = |byte: u8| byte.is_ascii_alphanumeric() || b"._%+-".contains(&byte);
    let domain = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.';
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        let start = bytes[..at]
            .iter()
            .rposition(|byte| !local(*byte))
            .map_or(0, |position| position + 1);
        let mut end = bytes[at + 1..]
            .iter()
            .position(|byte| !domain(*byte))
            .map_or(bytes.len(), |length| at + 1 + length);
        while end > at + 1 && bytes[end - 1] == b'.' {
            end -= 1;
        }
        let host = &text[at + 1..end];
        let has_tld = host.rsplit_once('.').is_some_and(|(name, tld)| {
            !name.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if start < at && has_tld {
            found.push(start..end);
        }
    }
    found
}

/// `+` and 8 to 15 digits, which may be grouped by single spaces, dashes or parentheses.
fn phones(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (start, _) in text.match_indices('+') {
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut digits = 0;
        let mut end = start + 1;
        let mut index = start + 1;
        while index < bytes.len() {
            let byte = bytes[index];
            if byte.is_ascii_digit() {
                digits += 1;
                index += 1;
                end = index;
            } else if matches!(byte, b' ' | b'-' | b'(' | b')')
                && bytes
                    .get(index + 1)
                    .is_some_and(|next| next.is_ascii_digit() || *next == b'(')
            {
                index += 1;
            } else {
                break;
            }
        }
        if (8..=15).contains(&digits) {
            found.push(start..end);
        }
    }
    found
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Where `value` stands as a whole token (not inside a longer word): byte offsets.
fn token_matches(text: &str, value: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    text.match_indices(value)
        .map(|(at, _)| at)
        .filter(|&at| {
            let before =
                at == 0 || !is_token_byte(bytes[at - 1]) || !is_token_byte(value.as_bytes()[0]);
            let end = at + value.len();
            let after = end == bytes.len()
                || !is_token_byte(bytes[end])
                || !is_token_byte(value.as_bytes()[value.len() - 1]);
            before && after
        })
        .collect()
}

fn lines_of(text: &str, value: &str) -> Vec<usize> {
    let mut lines: Vec<usize> = token_matches(text, value)
        .into_iter()
        .map(|at| text[..at].matches('\n').count() + 1)
        .collect();
    lines.dedup();
    lines
}

fn replace_tokens(text: &str, value: &str, placeholder: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for at in token_matches(text, value) {
        out.push_str(&text[copied..at]);
        out.push_str(placeholder);
        copied = at + value.len();
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPE: &str = "\
name: Welcome
description: Greets new customers; ask ann.smith@acme.example about it
trigger:
  webhook: { path: welcome }
vars:
  owner: Ann Smith
  hotline: +49 30 1234 5678
  report_to: ann.smith@acme.example
steps:
  - id: tell
    action: http.request
    connection: acme-crm
    input:
      url: https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX
      body: { text: 'Hello {{ trigger.body.name }}', key: sk_live_abcdefgh12345678 }
  - id: shop
    action: http.request
    connection: acme-crm
    input: { url: https://shop.example/orders?status=open }
";

    #[test]
    fn what_belongs_to_the_workspace_or_to_people_becomes_a_placeholder() {
        let shared = share(RECIPE).unwrap();
        for gone in [
            "ann.smith@acme.example",
            "Ann Smith",
            "+49 30 1234 5678",
            "acme-crm",
            "hooks.slack.com",
            "sk_live_",
        ] {
            assert!(!shared.source.contains(gone), "{gone} in {}", shared.source);
        }
        let kinds: Vec<(&str, Kind, Vec<usize>)> = shared
            .findings
            .iter()
            .map(|finding| (finding.value.as_str(), finding.kind, finding.lines.clone()))
            .collect();
        assert!(
            kinds.contains(&("ann.smith@acme.example", Kind::Email, vec![2, 8])),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("acme-crm", Kind::Connection, vec![12, 18])),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("Ann Smith", Kind::Name, vec![6])),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("+49 30 1234 5678", Kind::Phone, vec![7])),
            "{kinds:?}"
        );
        // What is not personal stays: templates, plain URLs, ids.
        assert!(shared.source.contains("Hello {{ trigger.body.name }}"));
        assert!(
            shared
                .source
                .contains("https://shop.example/orders?status=open")
        );
        assert!(shared.source.contains("id: shop"));
        assert!(shared.source.contains("connection: __share_connection_1__"));
        // The shared text is still a recipe, and filled in it is one again.
        let parsed: Value = serde_saphyr::from_str(&shared.source).unwrap();
        assert_eq!(parsed["steps"][1]["id"], "shop");
        let values = shared
            .findings
            .iter()
            .map(|finding| (finding.placeholder.clone(), finding.value.clone()))
            .collect();
        assert_eq!(fill(&shared.source, &values).unwrap(), RECIPE);
    }

    #[test]
    fn filling_names_every_placeholder_left_without_a_value() {
        let shared = share(RECIPE).unwrap();
        let error = fill(&shared.source, &BTreeMap::new()).unwrap_err();
        assert!(error.contains("__share_connection_1__"), "{error}");
        assert_eq!(placeholders_in(&shared.source).len(), shared.findings.len());
    }

    #[test]
    fn a_word_that_contains_a_connections_name_stays() {
        let recipe = "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: shopping\n    action: sqlite.query\n    connection: shop\n    input: { sql: SELECT 1 }\n";
        let shared = share(recipe).unwrap();
        assert!(shared.source.contains("id: shopping"), "{}", shared.source);
        assert!(shared.source.contains("connection: __share_connection_1__"));
    }
}
