//! Data-subject requests: which jobs of a workspace hold an identifier (an email, a phone
//! number, any text) in what they stored, and the erasure of it from each of them.
//!
//! The database narrows the jobs down by the identifier as JSON writes it, without regard to
//! case; each candidate is then read and walked, and only a real occurrence (in a text, a
//! number or a key) counts. An erasure replaces each occurrence with `[erased]` and writes the
//! job back, in batches, then makes the old rows' space unreadable (see
//! [`weft_store::Store::reclaim_space`]).

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use weft_store::{JobHolding, JobPayloads, Store, StoreError};

use crate::Runtime;

/// What an erased value is replaced with.
pub const ERASED: &str = "[erased]";
/// Shorter identifiers would erase common words.
pub const MIN_IDENTIFIER_CHARS: usize = 3;
/// Jobs read from the database at a time.
const PAGE: i64 = 500;
/// The pause between two pages of an erasure, in which the server's own work goes first.
const BETWEEN_PAGES: Duration = Duration::from_millis(10);

/// A job that holds the identifier, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectJob {
    pub id: String,
    pub recipe: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Paths such as `trigger.body.email` or `steps.send.input.to`.
    pub places: Vec<String>,
}

impl SubjectJob {
    /// Whether the job has ended (an erasure changes only such jobs).
    pub fn ended(&self) -> bool {
        ended(&self.status)
    }
}

fn ended(status: &str) -> bool {
    matches!(status, "succeeded" | "failed")
}

/// The jobs of a workspace the database finds holding a text, a page at a time.
struct Candidates<'s> {
    store: &'s Store,
    workspace: &'s str,
    text: String,
    after: String,
}

impl<'s> Candidates<'s> {
    fn new(store: &'s Store, workspace: &'s str, identifier: &str) -> Self {
        Candidates {
            store,
            workspace,
            text: as_json_text(identifier),
            after: String::new(),
        }
    }

    /// The next page; empty at the end.
    async fn next_page(&mut self) -> Result<Vec<JobHolding>, StoreError> {
        let page = self
            .store
            .jobs_holding(self.workspace, &self.text, &self.after, PAGE)
            .await?;
        if let Some(last) = page.last() {
            self.after = last.id.clone();
        }
        Ok(page)
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Erasure {
    /// Ended jobs written back without the identifier.
    pub jobs: u64,
    /// Occurrences replaced.
    pub values: u64,
    /// Jobs not ended yet, left as they are: erase again when they end (or cancel them).
    pub unfinished: Vec<String>,
    /// The call stopped at its `max_jobs`: more jobs may hold the identifier.
    pub more: bool,
}

impl Runtime {
    /// Every job of the workspace whose stored data holds `identifier`, oldest first.
    pub async fn search_subject(
        &self,
        workspace: &str,
        identifier: &str,
    ) -> Result<Vec<SubjectJob>, StoreError> {
        let store = self.store();
        let mut candidates = Candidates::new(store, workspace, identifier);
        let mut found = Vec::new();
        loop {
            let page = candidates.next_page().await?;
            if page.is_empty() {
                break;
            }
            for job in page {
                let Some(payloads) = store.job_payloads(&job.id).await? else {
                    continue;
                };
                let mut places = places_in_job(&payloads, identifier);
                if !ended(&job.status) {
                    // A running job's finished steps are stored apart from its row.
                    for (_, step) in store.job_progress(&job.id).await? {
                        let at = format!("steps.{}", step.id);
                        let step = serde_json::to_value(step).unwrap_or(Value::Null);
                        places_in(&step, identifier, &at, &mut places);
                    }
                }
                if places.is_empty() {
                    continue;
                }
                found.push(SubjectJob {
                    id: job.id,
                    recipe: job.recipe_name,
                    status: job.status,
                    created_at: job.created_at,
                    places,
                });
            }
        }
        Ok(found)
    }

    /// Replaces `identifier` with `[erased]` in every ended job of the workspace that holds
    /// it, or in the first `max_jobs` of them; jobs not ended yet are listed, not changed.
    pub async fn erase_subject(
        &self,
        workspace: &str,
        identifier: &str,
        max_jobs: Option<u64>,
    ) -> Result<Erasure, StoreError> {
        let store = self.store();
        let mut candidates = Candidates::new(store, workspace, identifier);
        let mut erasure = Erasure::default();
        let mut enough = false;
        while !enough {
            let page = candidates.next_page().await?;
            if page.is_empty() {
                break;
            }
            let mut changed = Vec::new();
            for job in page {
                if max_jobs.is_some_and(|max| erasure.jobs + changed.len() as u64 >= max) {
                    enough = true;
                    break;
                }
                if !ended(&job.status) {
                    erasure.unfinished.push(job.id);
                    continue;
                }
                let Some(mut payloads) = store.job_payloads(&job.id).await? else {
                    continue;
                };
                let replaced = erase_in_job(&mut payloads, identifier);
                if replaced > 0 {
                    erasure.values += replaced;
                    changed.push(payloads);
                }
            }
            erasure.jobs += store.rewrite_ended_jobs(&changed).await?;
            if !enough {
                tokio::time::sleep(BETWEEN_PAGES).await;
            }
        }
        erasure.more = enough;
        // Space is reclaimed once, when the last part of an erasure is done.
        if erasure.jobs > 0 && !enough {
            store.reclaim_space().await?;
        }
        Ok(erasure)
    }
}

/// The identifier as it is written inside a JSON string.
fn as_json_text(identifier: &str) -> String {
    let quoted = Value::String(identifier.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

fn places_in_job(job: &JobPayloads, identifier: &str) -> Vec<String> {
    let mut places = Vec::new();
    places_in(&job.trigger, identifier, "trigger", &mut places);
    if let Some(output) = &job.output {
        places_in(output, identifier, "output", &mut places);
    }
    if let Some(error) = &job.error {
        places_in(error, identifier, "error", &mut places);
    }
    if let Some(Value::Array(steps)) = &job.steps {
        for (index, step) in steps.iter().enumerate() {
            let at = match step.get("id").and_then(Value::as_str) {
                Some(id) => format!("steps.{id}"),
                None => format!("steps.{index}"),
            };
            places_in(step, identifier, &at, &mut places);
        }
    }
    places.dedup();
    places
}

/// Where `identifier` occurs in `value`, as paths under `at`.
fn places_in(value: &Value, identifier: &str, at: &str, places: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            if find_ignoring_case(text, identifier, 0).is_some() {
                places.push(at.to_owned());
            }
        }
        Value::Number(number) => {
            if number.to_string() == identifier {
                places.push(at.to_owned());
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                places_in(item, identifier, &format!("{at}.{index}"), places);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let here = format!("{at}.{key}");
                if find_ignoring_case(key, identifier, 0).is_some() {
                    places.push(format!("{here} (key)"));
                }
                places_in(item, identifier, &here, places);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Erases `identifier` from every payload of a job; how many occurrences it replaced.
fn erase_in_job(job: &mut JobPayloads, identifier: &str) -> u64 {
    let mut replaced = erase_in(&mut job.trigger, identifier);
    for value in [&mut job.output, &mut job.error, &mut job.steps]
        .into_iter()
        .flatten()
    {
        replaced += erase_in(value, identifier);
    }
    replaced
}

fn erase_in(value: &mut Value, identifier: &str) -> u64 {
    match value {
        Value::String(text) => {
            let (erased, count) = replace_ignoring_case(text, identifier);
            if count > 0 {
                *text = erased;
            }
            count
        }
        Value::Number(number) => {
            if number.to_string() == identifier {
                *value = Value::String(ERASED.to_owned());
                1
            } else {
                0
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|item| erase_in(item, identifier))
            .sum(),
        Value::Object(map) => {
            let mut count = 0;
            if map
                .keys()
                .any(|key| find_ignoring_case(key, identifier, 0).is_some())
            {
                let entries = std::mem::take(map);
                for (key, item) in entries {
                    let (key, in_key) = replace_ignoring_case(&key, identifier);
                    count += in_key;
                    map.insert(key, item);
                }
            }
            count
                + map
                    .values_mut()
                    .map(|item| erase_in(item, identifier))
                    .sum::<u64>()
        }
        Value::Null | Value::Bool(_) => 0,
    }
}

/// Where `needle` first occurs in `text` at or after byte `from`, ASCII case ignored (as the
/// database's `lower` does on both backends for ASCII).
fn find_ignoring_case(text: &str, needle: &str, from: usize) -> Option<usize> {
    let (text, needle) = (text.as_bytes(), needle.as_bytes());
    if needle.is_empty() || text.len() < needle.len() {
        return None;
    }
    (from..=text.len() - needle.len())
        .find(|&start| text[start..start + needle.len()].eq_ignore_ascii_case(needle))
}

/// `text` with each occurrence of `needle` (ASCII case ignored) replaced by `[erased]`, and
/// how many there were. A match begins and ends on character boundaries: it compares
/// non-ASCII bytes exactly, and `needle` is whole characters.
fn replace_ignoring_case(text: &str, needle: &str) -> (String, u64) {
    let mut out = String::new();
    let mut copied = 0;
    let mut count = 0;
    while let Some(start) = find_ignoring_case(text, needle, copied) {
        out.push_str(&text[copied..start]);
        out.push_str(ERASED);
        copied = start + needle.len();
        count += 1;
    }
    if count == 0 {
        return (text.to_owned(), 0);
    }
    out.push_str(&text[copied..]);
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(trigger: Value, steps: Value) -> JobPayloads {
        JobPayloads {
            id: "j".into(),
            trigger,
            output: Some(json!({"sent_to": "ANN@example.com"})),
            error: Some(json!({"message": "cannot mail ann@example.com: full"})),
            steps: Some(steps),
        }
    }

    #[test]
    fn every_occurrence_is_found_and_erased_whatever_its_case() {
        let mut job = job(
            json!({"body": {"email": "ann@example.com", "note": "from Ann@Example.com",
                            "by_email": {"ann@example.com": 3}}}),
            json!([{"id": "send", "input": {"to": ["ann@example.com", "bob@example.com"]}}]),
        );
        let places = places_in_job(&job, "ann@example.com");
        assert_eq!(
            places,
            vec![
                "trigger.body.email",
                "trigger.body.note",
                "trigger.body.by_email.ann@example.com (key)",
                "output.sent_to",
                "error.message",
                "steps.send.input.to.0",
            ]
        );
        assert_eq!(erase_in_job(&mut job, "ann@example.com"), 6);
        let text = serde_json::to_string(&(&job.trigger, &job.output, &job.error, &job.steps))
            .unwrap()
            .to_ascii_lowercase();
        assert!(!text.contains("ann@example.com"), "{text}");
        assert!(text.contains("bob@example.com"));
        assert_eq!(job.trigger["body"]["note"], "from [erased]");
        assert_eq!(job.trigger["body"]["by_email"], json!({"[erased]": 3}));
        assert!(places_in_job(&job, "ann@example.com").is_empty());
    }

    #[test]
    fn numbers_and_text_around_non_ascii_are_handled() {
        let mut value = json!({"phone": 4915112345678u64, "name": "Zoë Ünal", "n": 1});
        assert_eq!(erase_in(&mut value, "4915112345678"), 1);
        assert_eq!(
            erase_in(&mut value, "ünal"),
            0,
            "only ASCII case is ignored"
        );
        assert_eq!(erase_in(&mut value, "Ünal"), 1);
        assert_eq!(
            value,
            json!({"phone": ERASED, "name": "Zoë [erased]", "n": 1})
        );
    }

    #[test]
    fn the_identifier_is_searched_for_as_json_writes_it() {
        assert_eq!(as_json_text("say \"hi\""), "say \\\"hi\\\"");
        assert_eq!(as_json_text("zoë"), "zoë");
    }
}
