//! Filters and functions that recipe authors need beyond minijinja's own: dates and times,
//! JSON, hashing, base64 and URL encoding, and small helpers for objects.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use hmac::{Hmac, Mac};
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value as MjValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256, Sha512};

use crate::duration::parse_duration;
use crate::template::{from_json, text_of, to_json};

pub fn register(env: &mut Environment<'static>) {
    env.add_function("now", now);
    env.add_function("lookup", crate::lookup::lookup);
    env.add_filter("format_date", format_date);
    env.add_filter("to_timestamp", to_timestamp);
    env.add_filter("from_timestamp", from_timestamp);
    env.add_filter("add_duration", add_duration);
    env.add_filter("fromjson", fromjson);
    env.add_filter("sha256", |value: MjValue| {
        hex::encode(Sha256::digest(text_of(&value)))
    });
    env.add_filter("sha512", |value: MjValue| {
        hex::encode(Sha512::digest(text_of(&value)))
    });
    env.add_filter("hmac_sha256", hmac_sha256);
    env.add_filter("b64encode", |value: MjValue| {
        base64::engine::general_purpose::STANDARD.encode(text_of(&value))
    });
    env.add_filter("b64decode", b64decode);
    env.add_filter("urlencode_component", |value: MjValue| {
        utf8_percent_encode(&text_of(&value), COMPONENT).to_string()
    });
    env.add_filter("urldecode", urldecode);
    env.add_filter("keys", keys);
    env.add_filter("values", values);
    env.add_filter("merge", merge);
}

/// RFC 3986 unreserved characters stay; everything else is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `now()`: the current time in UTC, RFC 3339.
fn now() -> String {
    rfc3339(Utc::now())
}

/// Reads a point in time: RFC 3339 text, or seconds since 1970 as a number.
fn parse_time(value: &MjValue) -> Result<DateTime<Utc>, Error> {
    if value.is_number() {
        let seconds: f64 = f64::try_from(value.clone())
            .map_err(|_| invalid("a timestamp must be a number of seconds"))?;
        let millis = (seconds * 1000.0).round();
        if !millis.is_finite() || millis.abs() > 8.0e15 {
            return Err(invalid(format!(
                "{seconds} is out of range for a timestamp"
            )));
        }
        return Utc
            .timestamp_millis_opt(millis as i64)
            .single()
            .ok_or_else(|| invalid(format!("{seconds} is out of range for a timestamp")));
    }
    let text = value.as_str().ok_or_else(|| {
        invalid(format!(
            "expected a date as RFC 3339 text or a timestamp, got {}",
            value.kind()
        ))
    })?;
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_default());
    }
    Err(invalid(format!(
        "`{text}` is not an RFC 3339 date and time (like 2026-03-01T12:00:00Z)"
    )))
}

/// `value|format_date("%d.%m.%Y %H:%M", tz="Europe/Berlin")`, with strftime patterns.
fn format_date(value: MjValue, format: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let time = parse_time(&value)?;
    let zone: Option<String> = kwargs.get("tz")?;
    kwargs.assert_all_used()?;
    let format = format.unwrap_or_else(|| "%Y-%m-%dT%H:%M:%S%:z".to_owned());
    let items: Vec<chrono::format::Item> = chrono::format::StrftimeItems::new(&format).collect();
    if items
        .iter()
        .any(|item| matches!(item, chrono::format::Item::Error))
    {
        return Err(invalid(format!("`{format}` is not a valid date format")));
    }
    Ok(match zone {
        Some(zone) => {
            let zone: chrono_tz::Tz = zone
                .parse()
                .map_err(|_| invalid(format!("`{zone}` is not an IANA time zone")))?;
            time.with_timezone(&zone)
                .format_with_items(items.into_iter())
                .to_string()
        }
        None => time.format_with_items(items.into_iter()).to_string(),
    })
}

fn to_timestamp(value: MjValue) -> Result<i64, Error> {
    Ok(parse_time(&value)?.timestamp())
}

fn from_timestamp(value: MjValue) -> Result<String, Error> {
    Ok(rfc3339(parse_time(&value)?))
}

/// `value|add_duration("1d")`; `"-2h"` goes back.
fn add_duration(value: MjValue, duration: String) -> Result<String, Error> {
    let time = parse_time(&value)?;
    let (negative, text) = match duration.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, duration.as_str()),
    };
    let length = parse_duration(text).map_err(invalid)?;
    let delta =
        chrono::Duration::from_std(length).map_err(|_| invalid("the duration is too long"))?;
    let moved = if negative {
        time.checked_sub_signed(delta)
    } else {
        time.checked_add_signed(delta)
    };
    moved
        .map(rfc3339)
        .ok_or_else(|| invalid("the date moves out of range"))
}

fn fromjson(text: String) -> Result<MjValue, Error> {
    let parsed: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| invalid(format!("fromjson: the text is not JSON: {error}")))?;
    Ok(from_json(&parsed))
}

fn hmac_sha256(value: MjValue, key: String) -> Result<String, Error> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|_| invalid("hmac_sha256: invalid key"))?;
    mac.update(text_of(&value).as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

fn b64decode(text: String) -> Result<String, Error> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let trimmed = text.trim();
    let bytes = engine
        .decode(trimmed)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed.trim_end_matches('='))
        })
        .map_err(|error| invalid(format!("b64decode: not base64: {error}")))?;
    String::from_utf8(bytes).map_err(|_| invalid("b64decode: the decoded bytes are not UTF-8 text"))
}

fn urldecode(text: String) -> Result<String, Error> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| invalid("urldecode: the decoded bytes are not UTF-8 text"))
}

fn object_entries(value: &MjValue, filter: &str) -> Result<Vec<(MjValue, MjValue)>, Error> {
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "{filter} needs an object, got {}",
            value.kind()
        )));
    }
    let mut entries = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        entries.push((key, item));
    }
    Ok(entries)
}

fn keys(value: MjValue) -> Result<MjValue, Error> {
    Ok(MjValue::from(
        object_entries(&value, "keys")?
            .into_iter()
            .map(|(key, _)| key)
            .collect::<Vec<_>>(),
    ))
}

fn values(value: MjValue) -> Result<MjValue, Error> {
    Ok(MjValue::from(
        object_entries(&value, "values")?
            .into_iter()
            .map(|(_, item)| item)
            .collect::<Vec<_>>(),
    ))
}

/// `a|merge(b)`: the keys of both objects, b's value where both have one.
fn merge(value: MjValue, other: MjValue) -> Result<MjValue, Error> {
    let mut merged = to_json(&value).map_err(invalid)?;
    let extra = to_json(&other).map_err(invalid)?;
    match (&mut merged, extra) {
        (serde_json::Value::Object(base), serde_json::Value::Object(extra)) => {
            base.extend(extra);
            Ok(from_json(&merged))
        }
        _ => Err(invalid("merge needs two objects")),
    }
}

#[cfg(test)]
mod tests {
    use crate::template::{TemplateValue, from_json};
    use serde_json::{Value, json};

    fn eval(text: &str) -> Value {
        TemplateValue::compile_string(text)
            .unwrap()
            .render(&from_json(
                &json!({"t": {"when": "2026-03-01T12:30:00Z", "obj": {"a": 1}}}),
            ))
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn dates_format_convert_and_move() {
        assert_eq!(
            eval("{{ t.when|format_date('%d.%m.%Y %H:%M', tz='Europe/Berlin') }}"),
            json!("01.03.2026 13:30")
        );
        assert_eq!(eval("{{ t.when|to_timestamp }}"), json!(1_772_368_200));
        assert_eq!(
            eval("{{ 1772368200|from_timestamp }}"),
            json!("2026-03-01T12:30:00Z")
        );
        assert_eq!(
            eval("{{ t.when|add_duration('1d') }}"),
            json!("2026-03-02T12:30:00Z")
        );
        assert_eq!(
            eval("{{ t.when|add_duration('-30m') }}"),
            json!("2026-03-01T12:00:00Z")
        );
    }

    #[test]
    fn encodings_and_hashes() {
        assert_eq!(eval("{{ 'hello'|b64encode }}"), json!("aGVsbG8="));
        assert_eq!(eval("{{ 'aGVsbG8='|b64decode }}"), json!("hello"));
        assert_eq!(
            eval("{{ 'a b/c&d'|urlencode_component }}"),
            json!("a%20b%2Fc%26d")
        );
        assert_eq!(eval("{{ 'a%20b+c'|urldecode }}"), json!("a b c"));
        assert_eq!(
            eval("{{ 'abc'|sha256 }}"),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            eval("{{ 'data'|hmac_sha256('key') }}"),
            json!("5031fe3d989c6d1537a013fa6e739da23463fdaec3b70137d828e36ace221bd0")
        );
    }

    #[test]
    fn json_and_objects() {
        assert_eq!(eval("{{ '{\"x\": [1]}'|fromjson }}"), json!({"x": [1]}));
        assert_eq!(eval("{{ t.obj|tojson }}"), json!("{\"a\": 1}"));
        assert_eq!(eval("{{ t.obj|keys }}"), json!(["a"]));
        assert_eq!(eval("{{ t.obj|merge({'b': 2}) }}"), json!({"a": 1, "b": 2}));
        assert_eq!(eval("{{ t.missing|default('none') }}"), json!("none"));
    }
}
