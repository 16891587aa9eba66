//! What the broker connectors share about the messages they hand to jobs.

use base64::Engine as _;
use serde_json::{Value, json};

/// A message body as a job sees it: JSON when it parses, else text, else base64.
pub fn payload(data: &[u8]) -> Value {
    match std::str::from_utf8(data) {
        Ok(text) => serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
        Err(_) => json!(base64::engine::general_purpose::STANDARD.encode(data)),
    }
}

/// A message to send: text as it is, anything else as its JSON.
pub fn body(message: &Value) -> Vec<u8> {
    match message {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}
