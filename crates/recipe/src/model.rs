//! The typed recipe: what a valid recipe document becomes. Every value here has been checked;
//! templates and jq programs are compiled.

use serde_json::Value;
use std::time::Duration;

use crate::jq::JqProgram;
use crate::location::Span;
use crate::template::{Expression, TemplateValue};

#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    /// The workspace whose connections, lookup tables and recipes the recipe's names refer
    /// to: set by whoever keeps the recipe (`weft serve`), `default` otherwise.
    pub workspace: String,
    pub description: Option<String>,
    pub trigger: Trigger,
    pub vars: Vec<(String, TemplateValue)>,
    pub steps: Vec<Step>,
    pub output: Option<TemplateValue>,
    pub concurrency: Option<u32>,
    pub on_failure: Option<OnFailure>,
    pub retention: Option<Retention>,
    /// Runs a failed job again (from its failed step) this many times in all, by `weft serve`.
    pub retry: Option<Retry>,
    pub mask: Vec<MaskPath>,
}

impl Recipe {
    /// The path the recipe's webhook listens on, when its trigger is a webhook.
    pub fn webhook_path(&self) -> Option<&str> {
        match &self.trigger {
            Trigger::Webhook(webhook) => Some(webhook.path.as_str()),
            _ => None,
        }
    }

    /// Every step of the recipe, nested ones included, in document order.
    pub fn all_steps(&self) -> Vec<&Step> {
        let mut found = Vec::new();
        collect_steps(&self.steps, &mut found);
        found
    }
}

fn collect_steps<'a>(steps: &'a [Step], found: &mut Vec<&'a Step>) {
    for step in steps {
        found.push(step);
        for body in step.bodies() {
            collect_steps(body, found);
        }
    }
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Webhook(WebhookTrigger),
    Schedule(ScheduleTrigger),
    Poll(PollTrigger),
    Subscribe(SubscribeTrigger),
    Manual(ManualTrigger),
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Webhook(_) => "webhook",
            Trigger::Schedule(_) => "schedule",
            Trigger::Poll(_) => "poll",
            Trigger::Subscribe(_) => "subscribe",
            Trigger::Manual(_) => "manual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookMode {
    Async,
    Sync,
}

#[derive(Debug, Clone)]
pub struct WebhookTrigger {
    pub path: String,
    pub method: String,
    pub mode: WebhookMode,
    pub signature: Option<WebhookSignature>,
}

#[derive(Debug, Clone)]
pub struct WebhookSignature {
    pub scheme: SignatureScheme,
    pub secret: SignatureSecret,
}

/// How a sender signs its requests.
#[derive(Debug, Clone, PartialEq)]
pub enum SignatureScheme {
    /// An HMAC-SHA256 of the body in hex, in `header`, after `prefix`.
    Hmac { header: String, prefix: String },
    /// Slack's: `X-Slack-Signature: v0=HEX` of `v0:TIMESTAMP:BODY`, with
    /// `X-Slack-Request-Timestamp`; requests older than five minutes are refused.
    Slack,
    /// Stripe's: `Stripe-Signature: t=TIMESTAMP,v1=HEX` of `TIMESTAMP.BODY`; older than five
    /// minutes are refused.
    Stripe,
}

impl SignatureScheme {
    /// The header that carries the signature (always masked in records).
    pub fn header(&self) -> &str {
        match self {
            SignatureScheme::Hmac { header, .. } => header,
            SignatureScheme::Slack => "x-slack-signature",
            SignatureScheme::Stripe => "stripe-signature",
        }
    }
}

/// Where the signing secret is: in the recipe, or (better) sealed in a connection's
/// `signing_secret` field.
#[derive(Debug, Clone, PartialEq)]
pub enum SignatureSecret {
    Literal(String),
    Connection(String),
}

#[derive(Debug, Clone)]
pub struct ScheduleTrigger {
    pub cron: String,
    pub schedule: croner::Cron,
    pub timezone: chrono_tz::Tz,
}

impl ScheduleTrigger {
    /// The first time the schedule fires after `after`, reckoned in its time zone (so that
    /// `0 9 * * *` means 09:00 local time, summer and winter).
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.schedule
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&chrono::Utc))
    }
}

#[derive(Debug, Clone)]
pub struct PollTrigger {
    pub every: Duration,
    pub action: ActionRef,
    pub connection: Option<String>,
    pub input: TemplateValue,
    pub items: JqProgram,
    pub key: JqProgram,
    pub cursor: Option<PollCursor>,
}

#[derive(Debug, Clone)]
pub struct PollCursor {
    pub initial: Value,
    pub next: JqProgram,
}

#[derive(Debug, Clone)]
pub struct SubscribeTrigger {
    pub connector: String,
    pub connection: Option<String>,
    /// The connector's own keys: queue, topic, subject, stream, channel, ...
    pub options: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct ManualTrigger {
    pub input_schema: Option<InputSchema>,
}

/// A JSON Schema that a job's input must match, compiled once.
#[derive(Clone)]
pub struct InputSchema {
    pub schema: Value,
    validator: std::sync::Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InputSchema({})", self.schema)
    }
}

impl InputSchema {
    /// Compiles a schema; the error says why it is not a valid one.
    pub fn compile(schema: Value) -> Result<InputSchema, String> {
        let validator = jsonschema::validator_for(&schema)
            .map_err(|error| format!("input_schema is not a valid JSON Schema: {error}"))?;
        Ok(InputSchema {
            schema,
            validator: std::sync::Arc::new(validator),
        })
    }

    /// Checks an input; the error lists the first few mismatches with where they are.
    pub fn check(&self, input: &Value) -> Result<(), String> {
        let problems: Vec<String> = self
            .validator
            .iter_errors(input)
            .take(10)
            .map(|error| {
                let at = error.instance_path().to_string();
                if at.is_empty() {
                    error.to_string()
                } else {
                    format!("at {at}: {error}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the input does not match the recipe's input_schema: {}",
                problems.join("; ")
            ))
        }
    }
}

/// `connector.action`, as written in `action:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRef {
    pub connector: String,
    pub action: String,
}

impl std::fmt::Display for ActionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.connector, self.action)
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub span: Span,
    pub kind: StepKind,
    pub retry: Option<Retry>,
    pub timeout: Option<Duration>,
    pub on_error: Option<Vec<Step>>,
    pub continue_on_error: bool,
}

impl Step {
    /// The nested step lists of this step: branches, loop bodies and error handlers.
    pub fn bodies(&self) -> Vec<&[Step]> {
        let mut bodies: Vec<&[Step]> = match &self.kind {
            StepKind::If {
                then, otherwise, ..
            } => vec![then, otherwise],
            StepKind::ForEach { steps, .. } => vec![steps],
            _ => Vec::new(),
        };
        if let Some(handler) = &self.on_error {
            bodies.push(handler);
        }
        bodies
    }
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Action {
        action: ActionRef,
        connection: Option<String>,
        input: TemplateValue,
    },
    Transform {
        program: JqProgram,
        input: Option<TemplateValue>,
        collect: bool,
    },
    Set(Vec<(String, TemplateValue)>),
    If {
        condition: Expression,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    ForEach {
        over: Expression,
        item_name: String,
        steps: Vec<Step>,
        concurrency: usize,
    },
    Call {
        recipe: String,
        input: TemplateValue,
    },
    Respond(TemplateValue),
    Wait(Duration),
    Stop {
        failed: bool,
        reason: Option<TemplateValue>,
    },
}

impl StepKind {
    /// True for steps whose effects reach outside the job (an action, a call of another
    /// recipe): a job that resumes after a crash must replay them from their record instead
    /// of running them again. The other steps only compute from what the job holds, and are
    /// computed again.
    pub fn reaches_outside(&self) -> bool {
        matches!(self, StepKind::Action { .. } | StepKind::Call { .. })
    }

    /// True for steps before which a job must be durable: those that reach outside, and
    /// waits (the job's time passes, or it sleeps in the store).
    pub fn needs_durable_job(&self) -> bool {
        self.reaches_outside() || matches!(self, StepKind::Wait(_))
    }

    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Action { .. } => "action",
            StepKind::Transform { .. } => "transform",
            StepKind::Set(_) => "set",
            StepKind::If { .. } => "if",
            StepKind::ForEach { .. } => "for_each",
            StepKind::Call { .. } => "call",
            StepKind::Respond(_) => "respond",
            StepKind::Wait(_) => "wait",
            StepKind::Stop { .. } => "stop",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Fixed,
    Exponential,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Counts the first try.
    pub attempts: u32,
    pub backoff: Backoff,
    pub delay: Duration,
    pub max_delay: Option<Duration>,
    /// Spread retries by up to this fraction of the delay, so that many failing jobs do not
    /// retry in lockstep.
    pub jitter: bool,
}

#[derive(Debug, Clone)]
pub struct OnFailure {
    pub notify: Vec<String>,
    pub call: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordLevel {
    Full,
    Masked,
    Metadata,
}

#[derive(Debug, Clone)]
pub struct Retention {
    pub keep: Option<Duration>,
    pub record: RecordLevel,
}

/// A path whose values never reach job history: `trigger.body.card_number`,
/// `steps.*.output.token`. `*` matches any one key or list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskPath {
    pub segments: Vec<String>,
}
