//! One job's run: steps in order, control flow, attempts, error handlers, and the record.

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use weft_connectors::{CallContext, FailureKind};
use weft_recipe::Recipe;
use weft_recipe::model::{RecordLevel, Step, StepKind, Trigger};
use weft_recipe::template::{EvalError, TemplateValue};
use weft_store::{ErrorKind, JobRecord, JobStatus, RecordError, StepRecord, StepStatus, record};

use crate::jq_runner::JqFailure;
use crate::mask::{MaskRules, StepMasker, WorkspaceMasks, protect_record};
use crate::retry::delay_before;
use crate::scope::Scope;
use crate::{Engine, JobOutcome, StepLog};

/// Waits at least this long sleep in the store when the job is durable; shorter ones sleep in
/// the worker.
const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// How the steps so far ended: go on, or end the job.
enum Flow {
    Next,
    Stop {
        step: String,
        failed: bool,
        reason: Option<String>,
    },
    Fail(Failure),
    /// A durable `wait`: the job sleeps in the store until then.
    Suspend(DateTime<Utc>),
}

/// A failed step, as the job's error will show it.
#[derive(Debug, Clone)]
struct Failure {
    step: String,
    message: String,
    kind: ErrorKind,
}

impl Failure {
    fn new(step: &str, kind: ErrorKind, message: impl std::fmt::Display) -> Failure {
        Failure {
            step: step.to_owned(),
            message: format!("step `{step}`: {message}"),
            kind,
        }
    }

    fn expression(step: &str, error: EvalError) -> Failure {
        Failure::new(step, ErrorKind::Expression, error)
    }

    fn retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Connector | ErrorKind::Timeout)
    }

    fn record(&self) -> RecordError {
        RecordError {
            step: Some(self.step.clone()),
            message: self.message.clone(),
            kind: self.kind,
        }
    }
}

pub struct JobRun<'e> {
    engine: &'e Engine,
    recipe: Arc<Recipe>,
    job_id: String,
    attempt: u32,
    depth: usize,
    step_runs: AtomicUsize,
    response: Mutex<Option<Value>>,
    /// Values scrubbed from the record wherever they appear: secrets of the connections
    /// this job used, and values of masked variables.
    scrub: Mutex<Vec<Value>>,
    /// Where finished steps are written as they finish, and the steps a previous run of this
    /// job finished: set when the job is run by a server.
    durable: Option<Durable>,
    /// Masks each step record before it is written; made when the trigger is known.
    masker: Option<StepMasker>,
}

struct Durable {
    log: Arc<dyn StepLog>,
    finished: HashMap<String, StepRecord>,
}

impl<'e> JobRun<'e> {
    pub fn new(engine: &'e Engine, recipe: Arc<Recipe>, depth: usize) -> JobRun<'e> {
        JobRun {
            engine,
            recipe,
            job_id: uuid::Uuid::now_v7().to_string(),
            attempt: 1,
            depth,
            step_runs: AtomicUsize::new(0),
            response: Mutex::new(None),
            scrub: Mutex::new(Vec::new()),
            durable: None,
            masker: None,
        }
    }

    /// Writes each finished step to `log`, and takes the steps in `finished` (by path) as done.
    pub fn make_durable(&mut self, log: Arc<dyn StepLog>, finished: HashMap<String, StepRecord>) {
        self.durable = Some(Durable { log, finished });
    }

    /// Gives the run the id and attempt the store gave its job.
    pub fn identify(&mut self, job_id: &str, attempt: u32) {
        self.job_id = job_id.to_owned();
        self.attempt = attempt;
    }

    pub async fn run(mut self, trigger: Value) -> JobOutcome {
        let started_at = record::now();
        let level = self
            .recipe
            .retention
            .as_ref()
            .map_or(RecordLevel::Masked, |retention| retention.record);
        let workspace_masks: Arc<WorkspaceMasks> =
            self.engine.masks.for_workspace(&self.recipe.workspace);
        if self.durable.is_some() {
            let max_value_bytes = self.engine.limits.max_stored_value_bytes;
            self.masker = Some(StepMasker::new(
                &self.recipe.mask,
                Arc::clone(&workspace_masks),
                level,
                max_value_bytes,
                &trigger,
            ));
        }
        let job = json!({
            "id": self.job_id,
            "recipe": self.recipe.name,
            "workspace": self.recipe.workspace,
            "started_at": started_at,
            "attempt": self.attempt,
        });
        let mut scope = Scope::new(trigger.clone(), job);
        let mut journal = Vec::new();
        let flow = match self.prepare(&mut scope) {
            Ok(()) => {
                self.run_steps(&self.recipe.steps, &mut scope, &mut journal)
                    .await
                    .0
            }
            Err(failure) => Flow::Fail(failure),
        };
        let resume_at = match &flow {
            Flow::Suspend(until) => Some(*until),
            _ => None,
        };
        let (status, error, output) = self.finish(flow, &mut scope);
        let mut record = JobRecord {
            id: self.job_id.clone(),
            recipe: self.recipe.name.clone(),
            recipe_version: None,
            status,
            output,
            trigger,
            error,
            started_at,
            finished_at: resume_at.is_none().then(Utc::now),
            steps: journal,
            rerun_of: None,
            called_by: None,
            held: None,
            tasks: None,
        };
        let scrub = self
            .scrub
            .lock()
            .map(|mut scrub| std::mem::take(&mut *scrub))
            .unwrap_or_default();
        let max_value_bytes = self.engine.limits.max_stored_value_bytes;
        let rules = MaskRules {
            paths: &self.recipe.mask,
            workspace: &workspace_masks,
            level,
        };
        protect_record(&mut record, &rules, scrub, max_value_bytes);
        let response = self
            .response
            .lock()
            .ok()
            .and_then(|mut response| response.take());
        JobOutcome {
            record,
            response,
            resume_at,
        }
    }

    /// Checks the event against the recipe's input schema and sets the initial variables.
    fn prepare(&self, scope: &mut Scope) -> Result<(), Failure> {
        if let Trigger::Manual(manual) = &self.recipe.trigger
            && let Some(schema) = &manual.input_schema
        {
            schema.check(scope.trigger()).map_err(|message| Failure {
                step: String::new(),
                message,
                kind: ErrorKind::Validation,
            })?;
        }
        for (name, value) in &self.recipe.vars {
            let evaluated = value
                .render(&scope.template_context())
                .map_err(|error| Failure {
                    step: String::new(),
                    message: format!("variable `{name}`: {error}"),
                    kind: ErrorKind::Expression,
                })?;
            self.set_var(scope, name, evaluated);
        }
        Ok(())
    }

    /// Sets a variable, noting its value for scrubbing when a mask covers it.
    fn set_var(&self, scope: &mut Scope, name: &str, value: Value) {
        let masked = crate::mask::masked_variable_values(&self.recipe.mask, name, &value);
        if let Some(masker) = &self.masker {
            masker.add(masked.iter().cloned());
        }
        if !masked.is_empty()
            && let Ok(mut scrub) = self.scrub.lock()
        {
            scrub.extend(masked);
        }
        scope.set_var(name, value);
    }

    fn finish(&self, flow: Flow, scope: &mut Scope) -> (JobStatus, Option<RecordError>, Value) {
        let failed = |failure: Failure| {
            let mut error = failure.record();
            if failure.step.is_empty() {
                error.step = None;
            }
            (JobStatus::Failed, Some(error), Value::Null)
        };
        match flow {
            Flow::Fail(failure) => failed(failure),
            Flow::Suspend(_) => (JobStatus::Waiting, None, Value::Null),
            Flow::Stop {
                step,
                failed: true,
                reason,
            } => (
                JobStatus::Failed,
                Some(RecordError {
                    message: reason.unwrap_or_else(|| format!("step `{step}` stopped the job")),
                    step: Some(step),
                    kind: ErrorKind::Stopped,
                }),
                Value::Null,
            ),
            Flow::Next | Flow::Stop { .. } => match &self.recipe.output {
                None => (JobStatus::Succeeded, None, Value::Null),
                Some(output) => match output.render(&scope.template_context()) {
                    Ok(value) => (JobStatus::Succeeded, None, value),
                    Err(error) => failed(Failure {
                        step: String::new(),
                        message: format!("the recipe's output: {error}"),
                        kind: ErrorKind::Expression,
                    }),
                },
            },
        }
    }

    /// Runs a list of steps in order. Returns how they ended and the output of the last one
    /// that ran.
    fn run_steps<'a>(
        &'a self,
        steps: &'a [Step],
        scope: &'a mut Scope,
        journal: &'a mut Vec<StepRecord>,
    ) -> BoxFuture<'a, (Flow, Value)> {
        async move {
            let mut last = Value::Null;
            for step in steps {
                match self.run_step(step, scope, journal).await {
                    Flow::Next => last = scope.output_of(&step.id),
                    other => return (other, last),
                }
            }
            (Flow::Next, last)
        }
        .boxed()
    }

    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        scope: &'a mut Scope,
        journal: &'a mut Vec<StepRecord>,
    ) -> BoxFuture<'a, Flow> {
        async move {
            if let Some(reason) = self.cancelled() {
                return Flow::Fail(Failure::new(&step.id, ErrorKind::Stopped, reason));
            }
            let runs = self.step_runs.fetch_add(1, Ordering::Relaxed) + 1;
            if runs > self.engine.limits.max_step_runs {
                let limit = self.engine.limits.max_step_runs;
                return Flow::Fail(Failure::new(
                    &step.id,
                    ErrorKind::Validation,
                    format!("the job ran more than {limit} steps and was stopped"),
                ));
            }
            match &step.kind {
                StepKind::If { .. } => self.run_if(step, scope, journal).await,
                StepKind::ForEach { .. } => self.run_for_each(step, scope, journal).await,
                StepKind::Stop { failed, reason } => {
                    let started = record::now();
                    let reason = match reason.as_ref().map(|reason| render_text(reason, scope)) {
                        Some(Err(error)) => {
                            let failure = Failure::expression(&step.id, error);
                            let slot = push_record(journal, step, scope, started, 1, Value::Null);
                            return self.fail_step(step, scope, journal, slot, failure).await;
                        }
                        Some(Ok(reason)) => Some(reason),
                        None => None,
                    };
                    let output = json!({ "status": if *failed { "failed" } else { "succeeded" }, "reason": reason });
                    scope.set_output(&step.id, &output);
                    let slot = push_record(journal, step, scope, started, 1, Value::Null);
                    journal[slot].output = output;
                    Flow::Stop {
                        step: step.id.clone(),
                        failed: *failed,
                        reason,
                    }
                }
                _ => self.run_leaf(step, scope, journal).await,
            }
        }
        .boxed()
    }

    /// A step that does one thing: attempts with retries and a timeout each.
    async fn run_leaf(
        &self,
        step: &Step,
        scope: &mut Scope,
        journal: &mut Vec<StepRecord>,
    ) -> Flow {
        let path = scope.step_path(&step.id);
        if let Some(done) = self.finished_before(&path) {
            return self.replay(step, scope, journal, done);
        }
        if step.kind.needs_durable_job()
            && let Some(durable) = &self.durable
            && let Err(message) = durable.log.before_effect(&self.job_id).await
        {
            return Flow::Fail(Failure::new(
                &step.id,
                ErrorKind::Internal,
                format!("the job could not be written before this step: {message}"),
            ));
        }
        if let StepKind::Wait(duration) = step.kind
            && self.durable.is_some()
            && duration >= DURABLE_WAIT
        {
            return self.suspend(step, scope, journal, duration);
        }
        let started = record::now();
        let attempts_allowed = step.retry.as_ref().map_or(1, |retry| retry.attempts.max(1));
        let mut attempt = 0;
        let (input, result) = loop {
            attempt += 1;
            let (input, result) = self.attempt(step, scope).await;
            match (&result, &step.retry) {
                (Err(failure), Some(retry))
                    if failure.retryable() && attempt < attempts_allowed =>
                {
                    tokio::time::sleep(delay_before(retry, attempt + 1)).await;
                }
                _ => break (input, result),
            }
        };
        let slot = push_record(journal, step, scope, started, attempt, input);
        match result {
            Ok(output) => {
                if let StepKind::Set(_) = step.kind
                    && let Value::Object(values) = &output
                {
                    for (name, value) in values {
                        self.set_var(scope, name, value.clone());
                    }
                }
                scope.set_output(&step.id, &output);
                journal[slot].output = output;
                journal[slot].finished_at = record::now();
                if step.kind.reaches_outside() {
                    self.log_step(&path, &journal[slot]).await;
                }
                Flow::Next
            }
            Err(failure) => self.fail_step(step, scope, journal, slot, failure).await,
        }
    }

    /// The record of a step a previous run of this job finished, if any.
    fn finished_before(&self, path: &str) -> Option<StepRecord> {
        let durable = self.durable.as_ref()?;
        durable
            .finished
            .get(path)
            .filter(|record| record.status == StepStatus::Succeeded)
            .cloned()
    }

    /// Takes a step's recorded outcome instead of running it again: its output, the
    /// variables it set and the response it gave.
    fn replay(
        &self,
        step: &Step,
        scope: &mut Scope,
        journal: &mut Vec<StepRecord>,
        done: StepRecord,
    ) -> Flow {
        match &step.kind {
            StepKind::Set(_) => {
                if let Value::Object(values) = &done.output {
                    for (name, value) in values {
                        self.set_var(scope, name, value.clone());
                    }
                }
            }
            StepKind::Respond(_) => {
                if let Ok(mut first) = self.response.lock() {
                    first.get_or_insert_with(|| done.output.clone());
                }
            }
            _ => {}
        }
        scope.set_output(&step.id, &done.output);
        journal.push(done);
        Flow::Next
    }

    /// A durable wait: the step is recorded as done at the time it ends, and the job sleeps
    /// in the store until then; the run that takes it up again replays up to here.
    fn suspend(
        &self,
        step: &Step,
        scope: &mut Scope,
        journal: &mut Vec<StepRecord>,
        duration: std::time::Duration,
    ) -> Flow {
        let started = record::now();
        let until =
            started + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::days(30));
        let output = json!({ "waited_ms": duration.as_millis() as u64 });
        let slot = push_record(journal, step, scope, started, 1, Value::Null);
        journal[slot].output = output.clone();
        journal[slot].finished_at = until;
        scope.set_output(&step.id, &output);
        // The job's record so far, this step included, becomes its progress when it is put
        // to sleep: see the runtime.
        Flow::Suspend(until)
    }

    /// Why the job was cancelled while it ran, if it was: it stops before its next step.
    fn cancelled(&self) -> Option<String> {
        self.durable.as_ref()?.log.cancelled(&self.job_id)
    }

    /// Writes a finished step, masked, where a crashed or paused job resumes from.
    async fn log_step(&self, path: &str, record: &StepRecord) {
        let (Some(durable), Some(masker)) = (&self.durable, &self.masker) else {
            return;
        };
        let stored = masker.protect(record);
        if let Err(error) = durable.log.step_finished(&self.job_id, path, &stored).await {
            tracing::warn!(%error, job = %self.job_id, step = %record.id, "cannot write a finished step; after a crash it would run again");
        }
    }

    /// One attempt, cut off at the step's timeout. Returns the input it used and the result.
    async fn attempt(&self, step: &Step, scope: &mut Scope) -> (Value, Result<Value, Failure>) {
        let (input, work) = match self.prepare_attempt(step, scope) {
            Ok(prepared) => prepared,
            Err(failure) => return (Value::Null, Err(failure)),
        };
        // A transform's time limit is enforced where its program runs, which can also stop it.
        let outer_limit = match step.kind {
            StepKind::Transform { .. } => None,
            _ => step.timeout,
        };
        let result = match outer_limit {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(result) => result,
                Err(_) => Err(Failure::new(
                    &step.id,
                    ErrorKind::Timeout,
                    format!(
                        "timed out after {}",
                        weft_recipe::duration::format_duration(limit)
                    ),
                )),
            },
            None => work.await,
        };
        (input, result)
    }

    /// Evaluates a step's input and returns the work of one attempt, ready to run.
    #[allow(clippy::type_complexity)]
    fn prepare_attempt<'a>(
        &'a self,
        step: &'a Step,
        scope: &mut Scope,
    ) -> Result<(Value, BoxFuture<'a, Result<Value, Failure>>), Failure> {
        let id = step.id.as_str();
        let render = |value: &TemplateValue, scope: &mut Scope| {
            value
                .render(&scope.template_context())
                .map_err(|error| Failure::expression(id, error))
        };
        match &step.kind {
            StepKind::Action {
                action,
                connection,
                input,
            } => {
                let input = render(input, scope)?;
                // A loop's iterations are steps of their own to the remote end; the attempts
                // of one step share its key, so that a repeated delivery can be recognised.
                let idempotency_key = format!("{}:{}", self.job_id, scope.step_path(id));
                let work = self.call_action(
                    step,
                    action,
                    connection.as_deref(),
                    input.clone(),
                    idempotency_key,
                );
                Ok((input, work.boxed()))
            }
            StepKind::Transform {
                program,
                input,
                collect,
            } => {
                let (recorded, data) = match input {
                    Some(input) => {
                        let data = render(input, scope)?;
                        (data.clone(), data)
                    }
                    None => (Value::Null, scope.jq_input()),
                };
                let limit = step.timeout.map_or(self.engine.limits.jq_time, |timeout| {
                    timeout.min(self.engine.limits.jq_time)
                });
                let program = program.clone();
                let collect = *collect;
                let work = async move {
                    self.engine
                        .jq
                        .run(&program, data, collect, limit)
                        .await
                        .map_err(|failure| jq_failure(id, program.source(), failure))
                };
                Ok((recorded, work.boxed()))
            }
            StepKind::Set(values) => {
                let mut assigned = serde_json::Map::new();
                for (name, value) in values {
                    assigned.insert(name.clone(), render(value, scope)?);
                }
                Ok((
                    Value::Null,
                    futures::future::ready(Ok(Value::Object(assigned))).boxed(),
                ))
            }
            StepKind::Call { recipe, input } => {
                let input = render(input, scope)?;
                let work = self.call_recipe(id, recipe, input.clone());
                Ok((input, work.boxed()))
            }
            StepKind::Respond(response) => {
                let response = render(response, scope)?;
                let result = self.respond(id, response);
                Ok((Value::Null, futures::future::ready(result).boxed()))
            }
            StepKind::Wait(duration) => {
                let duration = *duration;
                let work = async move {
                    tokio::time::sleep(duration).await;
                    Ok(json!({ "waited_ms": duration.as_millis() as u64 }))
                };
                Ok((Value::Null, work.boxed()))
            }
            StepKind::If { .. } | StepKind::ForEach { .. } | StepKind::Stop { .. } => Err(
                Failure::new(id, ErrorKind::Internal, "not a single-action step"),
            ),
        }
    }

    async fn call_action(
        &self,
        step: &Step,
        action: &weft_recipe::model::ActionRef,
        connection_name: Option<&str>,
        input: Value,
        idempotency_key: String,
    ) -> Result<Value, Failure> {
        let id = step.id.as_str();
        let connector = self
            .engine
            .connectors
            .get(&action.connector)
            .ok_or_else(|| {
                Failure::new(
                    id,
                    ErrorKind::Validation,
                    format!("no connector named `{}`", action.connector),
                )
            })?;
        let connection = match connection_name {
            Some(name) => {
                let connection = self
                    .engine
                    .connections
                    .get(&self.recipe.workspace, name)
                    .await
                    .map_err(|message| Failure::new(id, ErrorKind::Validation, message))?;
                if connection.connector != action.connector {
                    return Err(Failure::new(
                        id,
                        ErrorKind::Validation,
                        format!(
                            "connection `{name}` is for `{}`, not `{}`",
                            connection.connector, action.connector
                        ),
                    ));
                }
                self.hide_secrets_of(connector.as_ref(), &connection);
                Some(connection)
            }
            None => None,
        };
        let context = CallContext {
            idempotency_key,
            timeout: step.timeout,
            workspace: self.recipe.workspace.clone(),
        };
        let Some(connection) = connection else {
            return connector
                .call(&action.action, None, input, &context)
                .await
                .map_err(|error| failure_of(id, error));
        };
        self.engine
            .call_within_budget(
                connector.as_ref(),
                &action.action,
                connection,
                input,
                &context,
                |refreshed| self.hide_secrets_of(connector.as_ref(), refreshed),
            )
            .await
            .map_err(|error| failure_of(id, error))
    }

    /// Keeps a connection's secret values out of the job's record and error messages.
    fn hide_secrets_of(
        &self,
        connector: &dyn weft_connectors::Connector,
        connection: &weft_connectors::Connection,
    ) {
        let secret_fields: Vec<&str> = connector
            .connection_fields()
            .iter()
            .filter(|field| field.secret)
            .map(|field| field.name)
            .collect();
        let secrets: Vec<Value> = connection
            .secret_values(&secret_fields)
            .map(str::to_owned)
            .chain(connection.derived_secrets())
            .map(Value::String)
            .collect();
        if let Some(masker) = &self.masker {
            masker.add(secrets.iter().cloned());
        }
        if let Ok(mut scrub) = self.scrub.lock() {
            scrub.extend(secrets);
        }
    }

    async fn call_recipe(&self, id: &str, name: &str, input: Value) -> Result<Value, Failure> {
        if self.depth + 1 > self.engine.limits.max_call_depth {
            return Err(Failure::new(
                id,
                ErrorKind::Validation,
                format!(
                    "calls nest deeper than {} recipes (does a recipe call itself?)",
                    self.engine.limits.max_call_depth
                ),
            ));
        }
        let recipe = self
            .engine
            .recipes
            .find(&self.recipe.workspace, name)
            .await
            .map_err(|message| Failure::new(id, ErrorKind::Validation, message))?;
        let child = JobRun::new(self.engine, Arc::clone(&recipe), self.depth + 1);
        let mut outcome = Box::pin(child.run(input)).await;
        if let Some(durable) = &self.durable {
            outcome.record.called_by = Some(self.job_id.clone());
            if let Err(message) = durable.log.child_finished(&recipe, &outcome.record).await {
                tracing::warn!(job = %self.job_id, step = id, %message, "cannot keep the record of a called recipe's job");
            }
        }
        match outcome.record.status {
            JobStatus::Succeeded => Ok(outcome.record.output),
            _ => {
                let error = outcome.record.error.unwrap_or(RecordError {
                    step: None,
                    message: "it failed".to_owned(),
                    kind: ErrorKind::Internal,
                });
                Err(Failure::new(
                    id,
                    error.kind,
                    format!("recipe `{name}` failed: {}", error.message),
                ))
            }
        }
    }

    fn respond(&self, id: &str, response: Value) -> Result<Value, Failure> {
        let status = match response.get("status") {
            None | Some(Value::Null) => 200,
            Some(value) => match value
                .as_u64()
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
            {
                Some(status) if (100..=599).contains(&status) => status,
                _ => {
                    return Err(Failure::new(
                        id,
                        ErrorKind::Validation,
                        format!(
                            "respond.status must be an HTTP status from 100 to 599, not {value}"
                        ),
                    ));
                }
            },
        };
        let headers = match response.get("headers") {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(headers)) => Value::Object(headers.clone()),
            Some(other) => {
                return Err(Failure::new(
                    id,
                    ErrorKind::Validation,
                    format!("respond.headers must be an object, not {other}"),
                ));
            }
        };
        let body = response.get("body").cloned().unwrap_or(Value::Null);
        let response = json!({ "status": status, "headers": headers, "body": body });
        let is_first = match self.response.lock() {
            Ok(mut first) if first.is_none() => {
                *first = Some(response.clone());
                true
            }
            _ => false,
        };
        // A caller waiting on a sync webhook gets its answer now; the job goes on.
        if is_first && let Some(durable) = &self.durable {
            durable.log.responded(&self.job_id, &response);
        }
        Ok(response)
    }

    /// A step's own expression (a condition, a loop's list) failed.
    async fn fail_expression(
        &self,
        step: &Step,
        scope: &mut Scope,
        journal: &mut Vec<StepRecord>,
        slot: usize,
        error: EvalError,
    ) -> Flow {
        let failure = Failure::expression(&step.id, error);
        self.fail_step(step, scope, journal, slot, failure).await
    }

    /// After a step failed: its `on_error` steps, or `continue_on_error`, or the job fails.
    async fn fail_step(
        &self,
        step: &Step,
        scope: &mut Scope,
        journal: &mut Vec<StepRecord>,
        slot: usize,
        failure: Failure,
    ) -> Flow {
        let attempts = journal[slot].attempts;
        journal[slot].error = Some(failure.record());
        journal[slot].output = Value::Null;
        journal[slot].finished_at = record::now();
        scope.set_output(&step.id, &Value::Null);
        if let Some(handler) = &step.on_error {
            journal[slot].status = StepStatus::Handled;
            scope.set_error(json!({
                "step": failure.step,
                "message": failure.message,
                "kind": failure.kind,
                "attempts": attempts,
            }));
            let (flow, _) = self.run_steps(handler, scope, journal).await;
            scope.clear_error();
            return flow;
        }
        journal[slot].status = StepStatus::Failed;
        if step.continue_on_error {
            Flow::Next
        } else {
            Flow::Fail(failure)
        }
    }

    async fn run_if(&self, step: &Step, scope: &mut Scope, journal: &mut Vec<StepRecord>) -> Flow {
        let StepKind::If {
            condition,
            then,
            otherwise,
        } = &step.kind
        else {
            return Flow::Next;
        };
        let started = record::now();
        let slot = push_record(journal, step, scope, started, 1, Value::Null);
        let chosen = match condition.is_true(&scope.template_context()) {
            Ok(chosen) => chosen,
            Err(error) => {
                return self
                    .fail_expression(step, scope, journal, slot, error)
                    .await;
            }
        };
        let output = json!({ "branch": if chosen { "then" } else { "else" } });
        scope.set_output(&step.id, &output);
        journal[slot].output = output;
        let branch = if chosen { then } else { otherwise };
        let (flow, _) = self.run_steps(branch, scope, journal).await;
        journal[slot].finished_at = record::now();
        match flow {
            Flow::Fail(failure) => self.fail_control(step, scope, journal, slot, failure).await,
            other => other,
        }
    }

    async fn run_for_each(
        &self,
        step: &Step,
        scope: &mut Scope,
        journal: &mut Vec<StepRecord>,
    ) -> Flow {
        let StepKind::ForEach {
            over,
            item_name,
            steps,
            concurrency,
        } = &step.kind
        else {
            return Flow::Next;
        };
        let started = record::now();
        let slot = push_record(journal, step, scope, started, 1, Value::Null);
        let items = match over.eval(&scope.template_context()) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Null) => Vec::new(),
            Ok(other) => {
                let kind = json_kind(&other);
                let failure = Failure::new(
                    &step.id,
                    ErrorKind::Validation,
                    format!("for_each needs a list, but `{}` gave {kind}", over.source()),
                );
                return self.fail_step(step, scope, journal, slot, failure).await;
            }
            Err(error) => {
                return self
                    .fail_expression(step, scope, journal, slot, error)
                    .await;
            }
        };
        let limit = self.engine.limits.max_loop_items;
        if items.len() > limit {
            let failure = Failure::new(
                &step.id,
                ErrorKind::Validation,
                format!(
                    "for_each over {} items is more than the limit of {limit} items per loop",
                    items.len()
                ),
            );
            return self.fail_step(step, scope, journal, slot, failure).await;
        }
        journal[slot].input = json!({ "items": items.len() });
        let stop_launching = AtomicBool::new(false);
        let base = scope.clone();
        let iterations = stream::iter(items.into_iter().enumerate())
            .map(|(index, item)| {
                let mut iteration = base.clone();
                iteration.set_item(&step.id, item_name, item, index);
                let stop_launching = &stop_launching;
                async move {
                    let mut records = Vec::new();
                    if stop_launching.load(Ordering::Relaxed) {
                        return None;
                    }
                    let (flow, last) = self.run_steps(steps, &mut iteration, &mut records).await;
                    if !matches!(flow, Flow::Next) {
                        stop_launching.store(true, Ordering::Relaxed);
                    }
                    Some((iteration, records, flow, last))
                }
            })
            .buffered(*concurrency)
            .collect::<Vec<_>>()
            .await;
        let body_ids = body_step_ids(steps);
        let mut outputs = Vec::new();
        let mut ending = Flow::Next;
        for (iteration, records, flow, last) in iterations.into_iter().flatten() {
            journal.extend(records);
            scope.absorb(&iteration, &base, &body_ids);
            outputs.push(last);
            if matches!(ending, Flow::Next) {
                ending = flow;
            }
        }
        let output = Value::Array(outputs);
        scope.set_output(&step.id, &output);
        journal[slot].output = output;
        journal[slot].finished_at = record::now();
        match ending {
            Flow::Fail(failure) => self.fail_control(step, scope, journal, slot, failure).await,
            other => other,
        }
    }

    /// A step inside an `if` or `for_each` failed: the control step fails with it. Its own
    /// error handling applies; unhandled, the job fails with the inner step's error.
    async fn fail_control(
        &self,
        step: &Step,
        scope: &mut Scope,
        journal: &mut Vec<StepRecord>,
        slot: usize,
        failure: Failure,
    ) -> Flow {
        let output = journal[slot].output.clone();
        let flow = self.fail_step(step, scope, journal, slot, failure).await;
        // What the control step computed before its body failed stays visible in its record.
        journal[slot].output = output;
        flow
    }
}

/// Records that a step started; the caller fills in how it ended.
fn push_record(
    journal: &mut Vec<StepRecord>,
    step: &Step,
    scope: &Scope,
    started: DateTime<Utc>,
    attempts: u32,
    input: Value,
) -> usize {
    journal.push(StepRecord {
        id: step.id.clone(),
        status: StepStatus::Succeeded,
        index: scope.index(),
        path: scope.index().map(|_| scope.step_path(&step.id)),
        attempts,
        input,
        output: Value::Null,
        error: None,
        started_at: started,
        finished_at: record::now(),
    });
    journal.len() - 1
}

fn render_text(value: &TemplateValue, scope: &mut Scope) -> Result<String, EvalError> {
    Ok(match value.render(&scope.template_context())? {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn jq_failure(step: &str, program: &str, failure: JqFailure) -> Failure {
    let shown = weft_recipe::text::shorten(program, 120);
    match failure {
        JqFailure::Error(error) => Failure::new(
            step,
            ErrorKind::Expression,
            format!("jq: {} (in `{shown}`)", error.message),
        ),
        JqFailure::Timeout(limit) => Failure::new(
            step,
            ErrorKind::Timeout,
            format!(
                "the jq program ran longer than {} and was stopped (in `{shown}`)",
                weft_recipe::duration::format_duration(limit)
            ),
        ),
        JqFailure::Crashed(message) => Failure::new(
            step,
            ErrorKind::Expression,
            format!("{message} (in `{shown}`)"),
        ),
        JqFailure::Unavailable(message) => Failure::new(step, ErrorKind::Internal, message),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The ids of every step in a loop body, nested ones included.
fn body_step_ids(steps: &[Step]) -> Vec<String> {
    let mut ids = Vec::new();
    for step in steps {
        ids.push(step.id.clone());
        for body in step.bodies() {
            ids.extend(body_step_ids(body));
        }
    }
    ids
}

fn failure_of(step: &str, error: weft_connectors::ConnectorError) -> Failure {
    let kind = match error.kind {
        FailureKind::Validation => ErrorKind::Validation,
        FailureKind::Remote => ErrorKind::Connector,
        FailureKind::Timeout => ErrorKind::Timeout,
    };
    Failure::new(step, kind, error.message)
}
