//! Compiling steps: ids, the one kind each step has, and the keys any step may add.

use std::time::Duration;

use crate::compile::reader::MapReader;
use crate::compile::{
    ActionInfo, Compiler, MAX_STEP_DEPTH, MAX_STEPS, Scope, closest, is_identifier,
};
use crate::location::Span;
use crate::model::{ActionRef, Backoff, Retry, Step, StepKind};
use crate::node::Key;
use crate::node::{Node, NodeValue};
use crate::template::TemplateValue;

const KINDS: &[&str] = &[
    "action",
    "transform",
    "set",
    "if",
    "for_each",
    "call",
    "respond",
    "wait",
    "stop",
];
const COMMON_KEYS: &[&str] = &[
    "id",
    "description",
    "retry",
    "timeout",
    "on_error",
    "continue_on_error",
];

/// Longest durable wait a step may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30 * 86_400);
/// Most loop iterations that may run at once.
pub const MAX_LOOP_CONCURRENCY: u64 = 100;

fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "action" => &["action", "connection", "input"],
        "transform" => &["transform", "input", "collect"],
        "set" => &["set"],
        "if" => &["if", "then", "else"],
        "for_each" => &["for_each", "as", "steps", "concurrency"],
        "call" => &["call", "input"],
        "respond" => &["respond"],
        "wait" => &["wait"],
        _ => &["stop"],
    }
}

impl Compiler<'_> {
    pub(super) fn step_list(&mut self, node: &Node, scope: &Scope, depth: usize) -> Vec<Step> {
        let Some(items) = self.list(node, "steps") else {
            return Vec::new();
        };
        if depth >= MAX_STEP_DEPTH {
            self.problem(
                node.span,
                format!("steps nest deeper than {MAX_STEP_DEPTH} levels"),
            );
            return Vec::new();
        }
        let mut steps = Vec::with_capacity(items.len());
        for item in items {
            self.step_count += 1;
            if self.step_count == MAX_STEPS + 1 {
                self.problem(
                    item.span,
                    format!("a recipe may hold at most {MAX_STEPS} steps"),
                );
            }
            let first_new_id = self.id_order.len();
            let step = self.step(item, scope, depth);
            // This step and every step nested in it are visible to the steps after it, even
            // when it has problems of its own, so that one mistake is not reported many times.
            let ran = self.id_order[first_new_id..].to_vec();
            self.visible.extend(ran);
            steps.extend(step);
        }
        steps
    }

    fn step(&mut self, node: &Node, scope: &Scope, depth: usize) -> Option<Step> {
        let mut map = MapReader::open(self, node, "a step")?;
        let id = self.step_id(&mut map);
        let kinds = map.present(KINDS);
        let kind_name = match kinds.as_slice() {
            [one] => Some(*one),
            [] => {
                self.problem(
                    map.span,
                    format!("a step needs one kind: {}", KINDS.join(", ")),
                );
                None
            }
            [first, second, ..] => {
                let span = map.take_entry(second).map_or(map.span, |(key, _)| key.span);
                self.problem(
                    span,
                    format!("a step has one kind, but this one has both `{first}` and `{second}`"),
                );
                for kind in &kinds {
                    map.take(kind);
                }
                None
            }
        };
        let retry_entry = map.take_entry("retry");
        let timeout_entry = map.take_entry("timeout");
        if let Some(kind) = kind_name.filter(|kind| ["if", "for_each", "stop"].contains(kind)) {
            for (key, _) in retry_entry.iter().chain(timeout_entry.iter()) {
                self.problem(
                    key.span,
                    format!(
                        "`{}` applies to steps that do one thing (action, transform, set, call, respond, wait), not to `{kind}`: put it on the steps inside",
                        key.name
                    ),
                );
            }
        }
        let retry = retry_entry.and_then(|(_, node)| self.retry(node));
        let timeout = timeout_entry.and_then(|(_, node)| self.duration(node, "timeout"));
        if let Some(description) = map.take("description") {
            self.string(description, "description");
        }
        let continue_on_error = map
            .take("continue_on_error")
            .and_then(|node| self.boolean(node, "continue_on_error"))
            .unwrap_or(false);
        let kind =
            kind_name.and_then(|kind| self.step_kind(kind, &mut map, scope, id.as_deref(), depth));
        // After the step's own body: the handler may read what ran in it, and the step itself.
        let on_error = map.take("on_error").map(|node| {
            let mut handler_scope = scope.clone();
            handler_scope.in_error_handler = true;
            if let Some(id) = &id {
                self.visible.insert(id.clone());
            }
            self.step_list(node, &handler_scope, depth + 1)
        });
        if on_error.is_some() && continue_on_error {
            self.problem(
                map.span,
                "a step has either on_error or continue_on_error, not both",
            );
        }
        let mut known: Vec<&str> = COMMON_KEYS.to_vec();
        known.extend(kind_name.map(kind_keys).unwrap_or(KINDS));
        map.finish(self, &known);
        Some(Step {
            id: id?,
            span: node.span,
            kind: kind?,
            retry,
            timeout,
            on_error,
            continue_on_error,
        })
    }

    fn step_id(&mut self, map: &mut MapReader) -> Option<String> {
        let node = map.require(self, "id")?;
        let id = self.string(node, "a step id")?;
        if !is_identifier(&id) {
            self.problem(
                node.span,
                format!("`{id}` is not a valid step id: use lower-case letters, digits and `_`, starting with a letter"),
            );
            return None;
        }
        if let Some(first) = self.step_ids.get(&id) {
            let message = format!(
                "duplicate step id `{id}` (first used at line {})",
                first.line
            );
            self.problem(node.span, message);
            return None;
        }
        self.step_ids.insert(id.clone(), node.span);
        self.id_order.push(id.clone());
        Some(id)
    }

    fn step_kind(
        &mut self,
        kind: &str,
        map: &mut MapReader,
        scope: &Scope,
        id: Option<&str>,
        depth: usize,
    ) -> Option<StepKind> {
        let what = match id {
            Some(id) => format!("step `{id}`"),
            None => "a step".to_owned(),
        };
        match kind {
            "action" => self.action_step(map, scope, &what),
            "transform" => {
                let program = map
                    .take("transform")
                    .and_then(|node| self.jq(node, scope, &what));
                let input = map
                    .take("input")
                    .map(|node| self.template(node, scope, &what));
                let collect = map
                    .take("collect")
                    .and_then(|node| self.boolean(node, "collect"))
                    .unwrap_or(false);
                Some(StepKind::Transform {
                    program: program?,
                    input,
                    collect,
                })
            }
            "set" => {
                let node = map.take("set")?;
                let mut values = MapReader::open(self, node, "set")?;
                let mut assigned = Vec::new();
                for (key, value) in values.remaining() {
                    self.check_identifier(key, "variable name");
                    assigned.push((key.name.clone(), self.template(value, scope, &what)));
                }
                Some(StepKind::Set(assigned))
            }
            "if" => {
                let condition = map.take("if").and_then(|node| {
                    self.expression(node, scope, &format!("the condition of {what}"))
                });
                let first_then_id = self.id_order.len();
                let then = match map.require(self, "then") {
                    Some(node) => self.step_list(node, scope, depth + 1),
                    None => Vec::new(),
                };
                // The `then` branch has not run where the `else` branch runs.
                let then_ids = self.id_order[first_then_id..].to_vec();
                for id in &then_ids {
                    self.visible.remove(id);
                }
                let otherwise = match map.take("else") {
                    Some(node) => self.step_list(node, scope, depth + 1),
                    None => Vec::new(),
                };
                self.visible.extend(then_ids);
                Some(StepKind::If {
                    condition: condition?,
                    then,
                    otherwise,
                })
            }
            "for_each" => self.for_each_step(map, scope, &what, depth),
            "call" => {
                let recipe = map.take("call").and_then(|node| self.string(node, "call"));
                if recipe.as_deref().is_some_and(|name| name.trim().is_empty()) {
                    self.problem(map.span, "call needs the name of a recipe");
                }
                let input = match map.take("input") {
                    Some(node) => self.template(node, scope, &what),
                    None => TemplateValue::Literal(serde_json::json!({})),
                };
                Some(StepKind::Call {
                    recipe: recipe?,
                    input,
                })
            }
            "respond" => {
                let node = map.take("respond")?;
                let mut response = MapReader::open(self, node, "respond")?;
                let status = response.take("status");
                if let Some(status) = status
                    && !matches!(status.value, NodeValue::String(_))
                {
                    self.integer(status, "respond.status", 100, 599);
                }
                if let Some(headers) = response.take("headers") {
                    MapReader::open(self, headers, "respond.headers").map(|mut h| h.remaining());
                }
                response.take("body");
                response.finish(self, &["status", "headers", "body"]);
                Some(StepKind::Respond(self.template(node, scope, &what)))
            }
            "wait" => {
                let node = map.take("wait")?;
                let duration = self.duration(node, "wait")?;
                if duration > MAX_WAIT {
                    self.problem(node.span, "wait may be at most 30d");
                }
                Some(StepKind::Wait(duration))
            }
            _ => self.stop_step(map, scope, &what),
        }
    }

    fn action_step(&mut self, map: &mut MapReader, scope: &Scope, what: &str) -> Option<StepKind> {
        let node = map.take("action")?;
        let action = self.action_ref(node);
        let connection = map
            .take("connection")
            .and_then(|node| self.string(node, "connection"));
        let input_node = map.take("input");
        let input = match input_node {
            Some(node) => self.template(node, scope, what),
            None => TemplateValue::Literal(serde_json::json!({})),
        };
        let action = action?;
        match self.catalog.action(&action.connector, &action.action) {
            Ok(info) => {
                if info.needs_connection && connection.is_none() {
                    self.problem(map.span, format!("`{action}` needs a `connection`"));
                }
                self.check_input_keys(&action, &info, input_node, map.span);
            }
            Err(message) => self.problem(node.span, message),
        }
        Some(StepKind::Action {
            action,
            connection,
            input,
        })
    }

    /// Checks the keys of an input written as a mapping against what the action takes.
    pub(super) fn check_input_keys(
        &mut self,
        action: &ActionRef,
        info: &ActionInfo,
        input: Option<&Node>,
        step_span: Span,
    ) {
        let entries: &[(Key, Node)] = match input.map(|node| &node.value) {
            Some(NodeValue::Map(entries)) => entries,
            None => &[],
            Some(_) => return,
        };
        if let Some(known) = &info.input_keys {
            for (key, _) in entries {
                if !known.contains(&key.name) {
                    let names: Vec<&str> = known.iter().map(String::as_str).collect();
                    let hint = match closest(&key.name, &names) {
                        Some(near) => format!("; did you mean `{near}`?"),
                        None => format!(" (it takes: {})", names.join(", ")),
                    };
                    self.problem(
                        key.span,
                        format!("`{action}` has no input `{}`{hint}", key.name),
                    );
                }
            }
        }
        for required in &info.required_input {
            if !entries.iter().any(|(key, _)| &key.name == required) {
                let span = input.map_or(step_span, |node| node.span);
                self.problem(span, format!("`{action}` needs the input `{required}`"));
            }
        }
    }

    /// `connector.action`.
    pub(super) fn action_ref(&mut self, node: &Node) -> Option<ActionRef> {
        let text = self.string(node, "action")?;
        match text.split_once('.') {
            Some((connector, action)) if !connector.is_empty() && !action.is_empty() => {
                Some(ActionRef {
                    connector: connector.to_owned(),
                    action: action.to_owned(),
                })
            }
            _ => {
                self.problem(
                    node.span,
                    format!(
                        "`{text}` is not an action: write `connector.action`, as in `http.request`"
                    ),
                );
                None
            }
        }
    }

    fn for_each_step(
        &mut self,
        map: &mut MapReader,
        scope: &Scope,
        what: &str,
        depth: usize,
    ) -> Option<StepKind> {
        let over = map
            .take("for_each")
            .and_then(|node| self.expression(node, scope, &format!("the list of {what}")));
        let item_name = match map.take("as") {
            Some(node) => {
                let name = self.string(node, "as")?;
                if !is_identifier(&name)
                    || ["trigger", "steps", "vars", "job", "error", "index"]
                        .contains(&name.as_str())
                {
                    self.problem(node.span, format!("`{name}` cannot name a loop item: use a lower-case name that is not trigger, steps, vars, job, error or index"));
                }
                name
            }
            None => "item".to_owned(),
        };
        let concurrency = map
            .take("concurrency")
            .and_then(|node| self.integer(node, "concurrency", 1, MAX_LOOP_CONCURRENCY))
            .unwrap_or(1) as usize;
        let mut body_scope = scope.clone();
        body_scope.loop_names.push(item_name.clone());
        let steps = match map.require(self, "steps") {
            Some(node) => self.step_list(node, &body_scope, depth + 1),
            None => Vec::new(),
        };
        Some(StepKind::ForEach {
            over: over?,
            item_name,
            steps,
            concurrency,
        })
    }

    fn stop_step(&mut self, map: &mut MapReader, scope: &Scope, what: &str) -> Option<StepKind> {
        let node = map.take("stop")?;
        if matches!(node.value, NodeValue::Null) {
            return Some(StepKind::Stop {
                failed: false,
                reason: None,
            });
        }
        let mut stop = MapReader::open(self, node, "stop")?;
        let failed = match stop.take("status") {
            Some(status) => {
                self.choice(status, "stop.status", &["succeeded", "failed"])? == "failed"
            }
            None => false,
        };
        let reason = stop
            .take("reason")
            .map(|reason| self.template(reason, scope, what));
        stop.finish(self, &["status", "reason"]);
        Some(StepKind::Stop { failed, reason })
    }

    pub(super) fn retry(&mut self, node: &Node) -> Option<Retry> {
        let mut map = MapReader::open(self, node, "retry")?;
        let attempts = map
            .require(self, "attempts")
            .and_then(|node| self.integer(node, "retry.attempts", 1, 100))
            .map(|n| n as u32);
        let backoff = match map.take("backoff") {
            Some(node) => match self.choice(node, "retry.backoff", &["exponential", "fixed"])? {
                "fixed" => Backoff::Fixed,
                _ => Backoff::Exponential,
            },
            None => Backoff::Exponential,
        };
        let delay = map
            .take("delay")
            .and_then(|node| self.duration(node, "retry.delay"))
            .unwrap_or(Duration::from_secs(1));
        let max_delay = map
            .take("max_delay")
            .and_then(|node| self.duration(node, "retry.max_delay"));
        let jitter = map
            .take("jitter")
            .and_then(|node| self.boolean(node, "retry.jitter"))
            .unwrap_or(true);
        map.finish(
            self,
            &["attempts", "backoff", "delay", "max_delay", "jitter"],
        );
        if max_delay.is_some_and(|max| max < delay) {
            self.problem(node.span, "retry.max_delay is shorter than retry.delay");
        }
        Some(Retry {
            attempts: attempts?,
            backoff,
            delay,
            max_delay,
            jitter,
        })
    }
}
