//! A workspace's masking rules: fields masked by name wherever they appear, and whether values
//! that look like card numbers or credentials are found and masked.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{MASKED, collect_leaves, detect};

/// Field names masked in every workspace that has not chosen its own.
pub const DEFAULT_MASKED_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "client_secret",
    "api_key",
    "access_token",
    "refresh_token",
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "card_number",
    "cvv",
    "cvc",
    "ssn",
    "social_security_number",
    "iban",
    "private_key",
];

/// What a workspace masks in its job records, besides each recipe's own `mask` paths.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceMasks {
    /// The names as the workspace gave them.
    fields: Vec<String>,
    /// The same, compared with keys by [`same_name`].
    compared: Vec<Vec<u8>>,
    detect: bool,
}

impl Default for WorkspaceMasks {
    fn default() -> Self {
        WorkspaceMasks::new(DEFAULT_MASKED_FIELDS.iter().copied(), true)
    }
}

impl WorkspaceMasks {
    pub fn new<S: AsRef<str>>(fields: impl IntoIterator<Item = S>, detect: bool) -> Self {
        let fields: Vec<String> = fields
            .into_iter()
            .map(|field| field.as_ref().trim().to_owned())
            .filter(|field| !field.is_empty())
            .collect();
        let compared = fields.iter().map(|field| comparable(field)).collect();
        WorkspaceMasks {
            fields,
            compared,
            detect,
        }
    }

    /// Rules that mask nothing: no field name, no detection.
    pub fn none() -> Self {
        WorkspaceMasks::new(Vec::<String>::new(), false)
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    pub fn detects(&self) -> bool {
        self.detect
    }

    /// Whether a field with this key is masked: names match without regard to case, `_`,
    /// `-`, spaces or dots, so `card_number` covers `cardNumber` and `Card-Number`.
    pub fn covers(&self, key: &str) -> bool {
        self.compared.iter().any(|name| same_name(key, name))
    }

    /// Masks what looks like a card number or a credential in `value`, if this workspace
    /// detects them.
    pub(super) fn detect_in(&self, value: &mut Value) {
        if self.detect {
            detect_in(value);
        }
    }

    /// Masks the fields this workspace names in `value`, noting the values masked in `found`.
    pub(super) fn mask_fields(&self, value: &mut Value, found: &mut Vec<Value>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    if self.covers(key) {
                        if !item.is_null() {
                            collect_leaves(item, found);
                            *item = Value::String(MASKED.to_owned());
                        }
                    } else {
                        self.mask_fields(item, found);
                    }
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|item| self.mask_fields(item, found)),
            _ => {}
        }
    }

    /// What [`Self::mask_fields`] would mask, found without changing the value.
    pub(super) fn find_fields(&self, value: &Value, found: &mut Vec<Value>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    if self.covers(key) {
                        collect_leaves(item, found);
                    } else {
                        self.find_fields(item, found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| self.find_fields(item, found)),
            _ => {}
        }
    }

    /// Text as it may be stored: what looks like a card number or a credential masked, when
    /// the workspace detects them.
    pub fn text(&self, text: &str) -> String {
        match self.detect.then(|| detect::redact(text)).flatten() {
            Some(redacted) => redacted,
            None => text.to_owned(),
        }
    }
}

/// Replaces card numbers and credentials found in any text or number of `value`.
fn detect_in(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Some(redacted) = detect::redact(text) {
                *text = redacted;
            }
        }
        Value::Number(number) => {
            if number.as_u64().is_some_and(detect::is_card_number) {
                *value = Value::String(MASKED.to_owned());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(detect_in),
        Value::Object(map) => map.values_mut().for_each(detect_in),
        Value::Null | Value::Bool(_) => {}
    }
}

fn is_separator(byte: u8) -> bool {
    matches!(byte, b'_' | b'-' | b' ' | b'.')
}

fn comparable(name: &str) -> Vec<u8> {
    name.bytes()
        .filter(|byte| !is_separator(*byte))
        .map(|byte| byte.to_ascii_lowercase())
        .collect()
}

/// Compares a key with a name made by [`comparable`], without allocating.
fn same_name(key: &str, compared: &[u8]) -> bool {
    let mut key = key
        .bytes()
        .filter(|byte| !is_separator(*byte))
        .map(|byte| byte.to_ascii_lowercase());
    compared.iter().all(|byte| key.next() == Some(*byte)) && key.next().is_none()
}

/// Each workspace's masking rules, as the engine applies them; a workspace not in the book
/// has the defaults.
#[derive(Default)]
pub struct MaskBook {
    default: Arc<WorkspaceMasks>,
    chosen: RwLock<HashMap<String, Arc<WorkspaceMasks>>>,
    /// Counts the changes made by [`MaskBook::set`], so that rules read from the store before
    /// a change do not overwrite it.
    changes: std::sync::atomic::AtomicU64,
}

impl MaskBook {
    pub fn for_workspace(&self, workspace: &str) -> Arc<WorkspaceMasks> {
        self.chosen
            .read()
            .ok()
            .and_then(|chosen| chosen.get(workspace).cloned())
            .unwrap_or_else(|| Arc::clone(&self.default))
    }

    /// Sets one workspace's rules.
    pub fn set(&self, workspace: &str, masks: WorkspaceMasks) {
        if let Ok(mut chosen) = self.chosen.write() {
            chosen.insert(workspace.to_owned(), Arc::new(masks));
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A mark to pass to [`MaskBook::replace_all`]: take it before reading the rules.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Replaces every workspace's rules with these (as read from the store), unless one was
    /// set since `changes` was taken: then the next reading does it.
    pub fn replace_all(
        &self,
        changes: u64,
        all: impl IntoIterator<Item = (String, WorkspaceMasks)>,
    ) {
        let all = all
            .into_iter()
            .map(|(workspace, masks)| (workspace, Arc::new(masks)))
            .collect();
        if let Ok(mut chosen) = self.chosen.write()
            && self.changes() == changes
        {
            *chosen = all;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names_match_whatever_their_spelling() {
        let masks = WorkspaceMasks::default();
        for key in [
            "password",
            "Password",
            "cardNumber",
            "Card-Number",
            "card_number",
            "SSN",
        ] {
            assert!(masks.covers(key), "{key}");
        }
        for key in ["passwords", "card", "number", "ss"] {
            assert!(!masks.covers(key), "{key}");
        }
    }

    #[test]
    fn named_fields_are_masked_at_any_depth_and_their_values_noted() {
        let masks = WorkspaceMasks::new(["ssn", "Authorization"], false);
        let mut value = json!({
            "headers": {"authorization": "Bearer t0ken-value"},
            "people": [{"name": "Ann", "ssn": "078-05-1120"}],
            "ssn": null,
        });
        let mut found = Vec::new();
        masks.mask_fields(&mut value, &mut found);
        assert_eq!(
            value,
            json!({
                "headers": {"authorization": MASKED},
                "people": [{"name": "Ann", "ssn": MASKED}],
                "ssn": null,
            })
        );
        assert!(found.contains(&json!("t0ken-value")), "{found:?}");
        assert!(found.contains(&json!("078-05-1120")), "{found:?}");
    }

    #[test]
    fn detection_masks_cards_in_text_and_numbers_unless_turned_off() {
        let mut value =
            json!({"note": "paid with 4111 1111 1111 1111", "pan": 4111111111111111u64});
        WorkspaceMasks::none().detect_in(&mut value);
        assert_eq!(value["pan"], json!(4111111111111111u64));
        WorkspaceMasks::new(Vec::<String>::new(), true).detect_in(&mut value);
        assert_eq!(
            value,
            json!({"note": "paid with [masked]", "pan": "[masked]"})
        );
    }

    #[test]
    fn the_book_gives_defaults_to_workspaces_without_rules() {
        let book = MaskBook::default();
        book.set("acme", WorkspaceMasks::new(["pin"], false));
        assert!(book.for_workspace("acme").covers("pin"));
        assert!(!book.for_workspace("acme").covers("password"));
        assert!(book.for_workspace("other").covers("password"));
        let before = book.changes();
        book.set("acme", WorkspaceMasks::new(["pin"], false));
        book.replace_all(before, []);
        assert!(
            book.for_workspace("acme").covers("pin"),
            "a newer rule stays"
        );
        book.replace_all(book.changes(), []);
        assert!(!book.for_workspace("acme").covers("pin"));
    }
}
