//! Masking of job records before they are stored or shown.
//!
//! A recipe's `mask` paths name the fields that must never reach job history. The value found
//! at a path is replaced, and so is every other copy of it in the record: a masked card number
//! copied into a step's input or quoted in an error message is masked there too. Connection
//! secrets are scrubbed the same way, wherever they appear. Each workspace adds its own rules
//! ([`WorkspaceMasks`]): fields masked by name anywhere, and values that look like card numbers
//! or credentials, found by [`detect`].

mod fields;
pub use weft_recipe::detect;

use serde_json::Value;
use weft_recipe::model::{MaskPath, RecordLevel};
use weft_store::{JobRecord, StepRecord};

pub use fields::{DEFAULT_MASKED_FIELDS, MaskBook, WorkspaceMasks};

pub use detect::MASKED;

/// Values shorter than this are masked at their paths only: scrubbing `"1"` or `"ok"`
/// everywhere would destroy the record without protecting anything.
const MIN_SCRUB_CHARS: usize = 4;

/// What a job's record is masked by.
#[derive(Clone, Copy)]
pub struct MaskRules<'a> {
    /// The recipe's `mask` paths.
    pub paths: &'a [MaskPath],
    /// The workspace's rules: applied unless the recipe keeps its records `full`.
    pub workspace: &'a WorkspaceMasks,
    /// How much of the record is kept.
    pub level: RecordLevel,
}

impl MaskRules<'_> {
    /// The workspace's rules, unless the recipe asked for full records.
    fn workspace(&self) -> Option<&WorkspaceMasks> {
        (self.level != RecordLevel::Full).then_some(self.workspace)
    }
}

/// Applies the recipe's and the workspace's masks, scrubs `also_scrub` (connection secrets,
/// masked variables) wherever it appears, trims the record to its level and cuts each value
/// over `max_value_bytes` of JSON.
pub fn protect_record(
    record: &mut JobRecord,
    rules: &MaskRules,
    also_scrub: Vec<Value>,
    max_value_bytes: usize,
) {
    let workspace = rules.workspace();
    let mut found = also_scrub;
    for mask in rules.paths {
        apply_mask(record, mask, &mut found);
    }
    if let Some(workspace) = workspace {
        for_each_value(record, |value| workspace.mask_fields(value, &mut found));
    }
    let needles = scrub_list(found);
    if !needles.is_empty() {
        for_each_value(record, |value| scrub(value, &needles));
    }
    if let Some(error) = &mut record.error {
        protect_message(&mut error.message, &needles, workspace);
    }
    for step in &mut record.steps {
        if let Some(error) = &mut step.error {
            protect_message(&mut error.message, &needles, workspace);
        }
    }
    if let Some(workspace) = workspace {
        for_each_value(record, |value| workspace.detect_in(value));
    }
    if rules.level == RecordLevel::Metadata {
        for_each_value(record, |value| *value = Value::Null);
    }
    for_each_value(record, |value| cut_if_large(value, max_value_bytes));
}

/// An error message as it may be stored: the values masked elsewhere scrubbed from it, then
/// what the workspace's detector finds.
fn protect_message(message: &mut String, needles: &[String], workspace: Option<&WorkspaceMasks>) {
    if !needles.is_empty() {
        *message = scrub_text(message, needles);
    }
    if let Some(workspace) = workspace {
        *message = workspace.text(message);
    }
}

/// Largest payload stored for one value of a record (a step's input or output, a trigger),
/// by default; larger ones are cut, with an explicit marker.
pub const MAX_STORED_VALUE_BYTES: usize = 1024 * 1024;
/// How much of a cut value is kept, to show what it was.
const PREVIEW_CHARS: usize = 1000;

/// Replaces a value whose JSON is larger than `limit` with a marker that says so.
fn cut_if_large(value: &mut Value, limit: usize) {
    if serialized_len(value) <= limit {
        return;
    }
    let Ok(text) = serde_json::to_string(value) else {
        return;
    };
    *value = serde_json::json!({
        "[cut]": format!("{} bytes, more than the {limit} bytes a stored value may hold", text.len()),
        "preview": weft_recipe::text::shorten(&text, PREVIEW_CHARS),
    });
}

/// The length of a value as JSON text, counted without building the text.
fn serialized_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// Every payload of a record: trigger, output, and each step's input and output.
fn for_each_value(record: &mut JobRecord, mut visit: impl FnMut(&mut Value)) {
    visit(&mut record.trigger);
    visit(&mut record.output);
    for step in &mut record.steps {
        visit(&mut step.input);
        visit(&mut step.output);
    }
}

fn apply_mask(record: &mut JobRecord, mask: &MaskPath, found: &mut Vec<Value>) {
    let segments = &mask.segments;
    match segments[0].as_str() {
        "trigger" => mask_at(&mut record.trigger, &segments[1..], found),
        "output" => mask_at(&mut record.output, &segments[1..], found),
        "steps" => {
            for step in &mut record.steps {
                mask_step(step, mask, found);
            }
        }
        // Variables are not stored as such; their values are scrubbed where they were copied
        // (see `masked_variable_values`).
        _ => {}
    }
}

/// Masks an event as its job's record will hold it: by the recipe's `trigger.…` paths and the
/// workspace's rules, with every copy of a masked value.
pub fn protect_trigger(rules: &MaskRules, trigger: &mut Value) {
    let mut found = Vec::new();
    for mask in rules
        .paths
        .iter()
        .filter(|mask| mask.segments[0] == "trigger")
    {
        mask_at(trigger, &mask.segments[1..], &mut found);
    }
    let workspace = rules.workspace();
    if let Some(workspace) = workspace {
        workspace.mask_fields(trigger, &mut found);
    }
    let needles = scrub_list(found);
    if !needles.is_empty() {
        scrub(trigger, &needles);
    }
    if let Some(workspace) = workspace {
        workspace.detect_in(trigger);
    }
    if rules.level == RecordLevel::Metadata {
        *trigger = Value::Null;
    }
}

/// Applies a `steps.…` mask to one step record, if it names that step.
fn mask_step(step: &mut StepRecord, mask: &MaskPath, found: &mut Vec<Value>) {
    let segments = &mask.segments;
    let names_step = segments[0] == "steps"
        && segments
            .get(1)
            .is_some_and(|id| id == "*" || *id == step.id);
    if !names_step {
        return;
    }
    match segments.get(2).map(String::as_str) {
        None => {
            mask_at(&mut step.input, &[], found);
            mask_at(&mut step.output, &[], found);
        }
        Some("output") => mask_at(&mut step.output, &segments[3..], found),
        Some("input") => mask_at(&mut step.input, &segments[3..], found),
        Some(_) => {}
    }
}

/// Masks step records one at a time, as they are written during a job: it remembers every
/// value masked so far (in the trigger, in earlier steps, connection secrets, masked
/// variables) and scrubs them from each new record.
pub struct StepMasker {
    masks: Vec<MaskPath>,
    workspace: std::sync::Arc<WorkspaceMasks>,
    level: RecordLevel,
    max_value_bytes: usize,
    found: std::sync::Mutex<Vec<Value>>,
}

impl StepMasker {
    pub fn new(
        paths: &[MaskPath],
        workspace: std::sync::Arc<WorkspaceMasks>,
        level: RecordLevel,
        max_value_bytes: usize,
        trigger: &Value,
    ) -> StepMasker {
        let rules = MaskRules {
            paths,
            workspace: &workspace,
            level,
        };
        let mut found = Vec::new();
        for mask in rules
            .paths
            .iter()
            .filter(|mask| mask.segments[0] == "trigger")
        {
            find_at(trigger, &mask.segments[1..], &mut found);
        }
        if let Some(workspace) = rules.workspace() {
            workspace.find_fields(trigger, &mut found);
        }
        StepMasker {
            masks: paths.to_vec(),
            workspace,
            level,
            max_value_bytes,
            found: std::sync::Mutex::new(found),
        }
    }

    /// Values to scrub from now on (secrets, masked variables).
    pub fn add(&self, values: impl IntoIterator<Item = Value>) {
        if let Ok(mut found) = self.found.lock() {
            found.extend(values);
        }
    }

    /// The record as it may be stored.
    pub fn protect(&self, record: &StepRecord) -> StepRecord {
        let mut record = record.clone();
        let mut new = Vec::new();
        for mask in &self.masks {
            mask_step(&mut record, mask, &mut new);
        }
        let workspace = (self.level != RecordLevel::Full).then_some(&*self.workspace);
        if let Some(workspace) = workspace {
            workspace.mask_fields(&mut record.input, &mut new);
            workspace.mask_fields(&mut record.output, &mut new);
        }
        let needles = match self.found.lock() {
            Ok(mut found) => {
                found.extend(new);
                scrub_list(found.clone())
            }
            Err(_) => scrub_list(new),
        };
        if !needles.is_empty() {
            scrub(&mut record.input, &needles);
            scrub(&mut record.output, &needles);
        }
        if let Some(error) = &mut record.error {
            protect_message(&mut error.message, &needles, workspace);
        }
        if let Some(workspace) = workspace {
            workspace.detect_in(&mut record.input);
            workspace.detect_in(&mut record.output);
        }
        if self.level == RecordLevel::Metadata {
            record.input = Value::Null;
            record.output = Value::Null;
        }
        cut_if_large(&mut record.input, self.max_value_bytes);
        cut_if_large(&mut record.output, self.max_value_bytes);
        record
    }
}

/// The values a `vars.…` mask covers when variable `name` is set to `value`.
pub fn masked_variable_values(masks: &[MaskPath], name: &str, value: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    for mask in masks {
        let segments = &mask.segments;
        let covers =
            segments[0] == "vars" && segments.get(1).is_some_and(|var| var == name || var == "*");
        if covers {
            find_at(value, &segments[2..], &mut found);
        }
    }
    found
}

/// Masks the value at a path, `*` matching every key or index.
fn mask_at(value: &mut Value, path: &[String], found: &mut Vec<Value>) {
    let Some((first, rest)) = path.split_first() else {
        if !value.is_null() {
            collect_leaves(value, found);
            *value = Value::String(MASKED.to_owned());
        }
        return;
    };
    match value {
        Value::Object(map) if first == "*" => {
            map.values_mut().for_each(|item| mask_at(item, rest, found))
        }
        Value::Object(map) => {
            if let Some(item) = map.get_mut(first) {
                mask_at(item, rest, found);
            }
        }
        Value::Array(items) if first == "*" => {
            items.iter_mut().for_each(|item| mask_at(item, rest, found))
        }
        Value::Array(items) => {
            if let Some(item) = first
                .parse::<usize>()
                .ok()
                .and_then(|index| items.get_mut(index))
            {
                mask_at(item, rest, found);
            }
        }
        _ => {}
    }
}

/// What [`mask_at`] would hide, found without changing (or copying) the value.
fn find_at(value: &Value, path: &[String], found: &mut Vec<Value>) {
    let Some((first, rest)) = path.split_first() else {
        collect_leaves(value, found);
        return;
    };
    match value {
        Value::Object(map) if first == "*" => {
            map.values().for_each(|item| find_at(item, rest, found))
        }
        Value::Array(items) if first == "*" => {
            items.iter().for_each(|item| find_at(item, rest, found))
        }
        Value::Object(map) => map
            .get(first)
            .into_iter()
            .for_each(|item| find_at(item, rest, found)),
        Value::Array(items) => first
            .parse::<usize>()
            .ok()
            .and_then(|index| items.get(index))
            .into_iter()
            .for_each(|item| find_at(item, rest, found)),
        _ => {}
    }
}

pub(crate) fn collect_leaves(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| collect_leaves(item, found)),
        Value::Object(map) => map.values().for_each(|item| collect_leaves(item, found)),
        Value::Null | Value::Bool(_) => {}
        Value::String(text) => {
            // `Bearer abc…` or `Basic …`: the credential travels alone too.
            if let Some((scheme, credential)) = text.split_once(' ')
                && scheme.chars().all(|c| c.is_ascii_alphabetic())
                && !credential.contains(' ')
            {
                found.push(Value::String(credential.to_owned()));
            }
            found.push(value.clone());
        }
        leaf => found.push(leaf.clone()),
    }
}

/// The texts to scrub, longest first so that a longer secret is replaced before its prefix.
fn scrub_list(found: Vec<Value>) -> Vec<String> {
    let mut needles: Vec<String> = found
        .into_iter()
        .map(|value| match value {
            Value::String(text) => text,
            other => other.to_string(),
        })
        .filter(|text| text.chars().count() >= MIN_SCRUB_CHARS && text != MASKED)
        .collect();
    needles.sort_by_key(|text| std::cmp::Reverse(text.len()));
    needles.dedup();
    needles
}

fn scrub(value: &mut Value, needles: &[String]) {
    match value {
        Value::String(text) => {
            if needles.iter().any(|needle| text.contains(needle.as_str())) {
                *text = scrub_text(text, needles);
            }
        }
        Value::Number(number) => {
            let text = number.to_string();
            if needles.contains(&text) {
                *value = Value::String(MASKED.to_owned());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| scrub(item, needles)),
        Value::Object(map) => map.values_mut().for_each(|item| scrub(item, needles)),
        Value::Null | Value::Bool(_) => {}
    }
}

fn scrub_text(text: &str, needles: &[String]) -> String {
    let mut out = text.to_owned();
    for needle in needles {
        if out.contains(needle.as_str()) {
            out = out.replace(needle.as_str(), MASKED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use weft_store::{JobStatus, StepRecord, StepStatus};

    fn record() -> JobRecord {
        let now = Utc::now();
        let step = |id: &str, input: Value, output: Value| StepRecord {
            id: id.to_owned(),
            status: StepStatus::Succeeded,
            index: None,
            path: None,
            attempts: 1,
            input,
            output,
            error: None,
            started_at: now,
            finished_at: now,
        };
        JobRecord {
            id: "j".into(),
            recipe: "r".into(),
            recipe_version: None,
            status: JobStatus::Succeeded,
            output: json!({"summary": "card 4111111111111111 charged"}),
            trigger: json!({"body": {"card_number": "4111111111111111", "name": "Ann"}}),
            error: None,
            started_at: now,
            finished_at: Some(now),
            steps: vec![
                step(
                    "charge",
                    json!({"card": "4111111111111111"}),
                    json!({"token": "tok_abcdef", "ok": true}),
                ),
                step(
                    "other",
                    json!({"auth": "Bearer s3cr3t-value"}),
                    json!({"echo": "s3cr3t-value"}),
                ),
            ],
            rerun_of: None,
            called_by: None,
            held: None,
            tasks: None,
        }
    }

    /// Masks by the recipe's paths alone: no workspace rules.
    fn protect_with(
        record: &mut JobRecord,
        masks: &[MaskPath],
        also: Vec<Value>,
        level: RecordLevel,
    ) {
        protect_in(&WorkspaceMasks::none(), record, masks, also, level);
    }

    fn protect_in(
        workspace: &WorkspaceMasks,
        record: &mut JobRecord,
        masks: &[MaskPath],
        also: Vec<Value>,
        level: RecordLevel,
    ) {
        let rules = MaskRules {
            paths: masks,
            workspace,
            level,
        };
        protect_record(record, &rules, also, MAX_STORED_VALUE_BYTES);
    }

    fn paths(texts: &[&str]) -> Vec<MaskPath> {
        texts
            .iter()
            .map(|text| MaskPath {
                segments: text.split('.').map(str::to_owned).collect(),
            })
            .collect()
    }

    #[test]
    fn masked_values_are_gone_everywhere_they_were_copied() {
        let mut record = record();
        protect_with(
            &mut record,
            &paths(&["trigger.body.card_number", "steps.*.output.token"]),
            Vec::new(),
            RecordLevel::Masked,
        );
        let text = serde_json::to_string(&record).unwrap();
        assert!(!text.contains("4111111111111111"), "{text}");
        assert!(!text.contains("tok_abcdef"), "{text}");
        assert_eq!(record.trigger["body"]["name"], "Ann");
        assert_eq!(record.output["summary"], "card [masked] charged");
    }

    #[test]
    fn secrets_are_scrubbed_from_payloads_and_errors() {
        let mut record = record();
        record.steps[1].error = Some(weft_store::RecordError {
            step: Some("other".into()),
            message: "auth s3cr3t-value refused".into(),
            kind: weft_store::ErrorKind::Connector,
        });
        protect_with(
            &mut record,
            &[],
            vec![json!("s3cr3t-value")],
            RecordLevel::Full,
        );
        let text = serde_json::to_string(&record).unwrap();
        assert!(!text.contains("s3cr3t-value"), "{text}");
    }

    #[test]
    fn a_masked_variable_is_scrubbed_wherever_its_value_went() {
        let masks = paths(&["vars.api_key", "vars.customer.ssn"]);
        let mut also = masked_variable_values(&masks, "api_key", &json!("k-123456"));
        also.extend(masked_variable_values(
            &masks,
            "customer",
            &json!({"ssn": "078-05-1120", "name": "Ann"}),
        ));
        assert_eq!(also, vec![json!("k-123456"), json!("078-05-1120")]);
        let mut record = record();
        record.output = json!({"text": "key k-123456 for 078-05-1120 (Ann)"});
        protect_with(&mut record, &masks, also, RecordLevel::Masked);
        assert_eq!(record.output["text"], "key [masked] for [masked] (Ann)");
    }

    /// The record's steps masked one at a time, as they are written during a job.
    fn each_step_masked(
        masks: &[MaskPath],
        workspace: WorkspaceMasks,
        whole: &JobRecord,
    ) -> Vec<StepRecord> {
        let masker = StepMasker::new(
            masks,
            std::sync::Arc::new(workspace),
            RecordLevel::Masked,
            MAX_STORED_VALUE_BYTES,
            &whole.trigger,
        );
        whole
            .steps
            .iter()
            .map(|step| masker.protect(step))
            .collect()
    }

    #[test]
    fn steps_masked_one_at_a_time_lose_what_the_whole_record_would() {
        let masks = paths(&["trigger.body.card_number", "steps.*.output.token"]);
        let whole = record();
        let one_by_one = each_step_masked(&masks, WorkspaceMasks::none(), &whole);
        let mut protected = whole.clone();
        protect_with(&mut protected, &masks, Vec::new(), RecordLevel::Masked);
        assert_eq!(one_by_one, protected.steps);
    }

    #[test]
    fn a_payload_over_the_limit_is_cut_with_a_marker() {
        let mut record = record();
        record.steps[0].output = json!({"blob": "x".repeat(MAX_STORED_VALUE_BYTES + 10)});
        protect_with(&mut record, &[], Vec::new(), RecordLevel::Full);
        let cut = &record.steps[0].output;
        assert!(
            cut["[cut]"]
                .as_str()
                .unwrap()
                .contains("more than the 1048576 bytes"),
            "{cut}"
        );
        assert!(cut["preview"].as_str().unwrap().len() < 2000);
        assert_eq!(record.steps[1].output, json!({"echo": "s3cr3t-value"}));
    }

    #[test]
    fn metadata_keeps_no_payloads() {
        let mut record = record();
        protect_with(&mut record, &[], Vec::new(), RecordLevel::Metadata);
        assert_eq!(record.trigger, Value::Null);
        assert!(
            record
                .steps
                .iter()
                .all(|step| step.input.is_null() && step.output.is_null())
        );
        assert_eq!(record.steps.len(), 2);
    }

    fn protect_in_default_workspace(record: &mut JobRecord, level: RecordLevel) {
        protect_in(&WorkspaceMasks::default(), record, &[], Vec::new(), level);
    }

    #[test]
    fn a_workspace_masks_named_fields_and_what_looks_secret_by_default() {
        let mut record = record();
        record.trigger = json!({"body": {"user": "ann", "Password": "hunter2-horse"}});
        record.steps[0].input = json!({"note": "login with hunter2-horse"});
        record.steps[0].output = json!({"receipt": "paid by 4111-1111-1111-1111"});
        record.steps[1].error = Some(weft_store::RecordError {
            step: Some("other".into()),
            message: "refused key sk_live_abcdefgh12345678".into(),
            kind: weft_store::ErrorKind::Connector,
        });
        protect_in_default_workspace(&mut record, RecordLevel::Masked);
        let text = serde_json::to_string(&record).unwrap();
        for secret in [
            "hunter2-horse",
            "4111-1111-1111-1111",
            "4111111111111111",
            "sk_live_",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(record.trigger["body"]["user"], "ann");
        assert_eq!(record.steps[0].input["note"], "login with [masked]");
        assert_eq!(
            record.steps[1].error.as_ref().unwrap().message,
            "refused key [masked]"
        );
    }

    #[test]
    fn full_records_keep_what_only_the_workspace_rules_would_mask() {
        let mut record = record();
        record.trigger = json!({"body": {"password": "hunter2-horse"}});
        protect_in_default_workspace(&mut record, RecordLevel::Full);
        assert_eq!(record.trigger["body"]["password"], "hunter2-horse");
        assert_eq!(record.steps[0].input["card"], "4111111111111111");
    }

    #[test]
    fn steps_masked_one_at_a_time_follow_the_workspace_rules_too() {
        let mut whole = record();
        whole.trigger = json!({"body": {"password": "hunter2-horse"}});
        whole.steps[0].input = json!({"echo": "hunter2-horse", "card": "4111111111111111"});
        let one_by_one = each_step_masked(&[], WorkspaceMasks::default(), &whole);
        protect_in_default_workspace(&mut whole, RecordLevel::Masked);
        assert_eq!(one_by_one, whole.steps);
        assert_eq!(one_by_one[0].input, json!({"echo": MASKED, "card": MASKED}));
    }
}
