//! What a step can see when it runs: the trigger, earlier steps' outputs, variables, the loop
//! item and the error being handled. Values are kept both as JSON (for jq and records) and as
//! template values (for minijinja), each converted once.

use minijinja::Value as MjValue;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

use weft_recipe::template::from_json;

/// One value in both forms.
#[derive(Clone)]
pub struct Shared {
    pub json: Arc<Value>,
    pub template: MjValue,
}

impl Shared {
    pub fn new(json: Value) -> Shared {
        let template = from_json(&json);
        Shared {
            json: Arc::new(json),
            template,
        }
    }
}

/// The context of expressions at one point of a job. Cheap to clone: loop iterations each
/// get their own.
#[derive(Clone)]
pub struct Scope {
    trigger: Shared,
    job: Shared,
    /// `steps.<id>` as templates see it: `{ "output": ... }`.
    steps: BTreeMap<String, Shared>,
    vars: BTreeMap<String, Shared>,
    /// The loops this scope is inside, outermost first: each `as` name, item and index.
    loops: Vec<(String, Shared, usize)>,
    error: Option<Shared>,
    /// The template context, built once and kept until the scope changes.
    cached: Option<MjValue>,
    /// The loop iterations this scope is inside, for step paths.
    path_prefix: String,
}

impl Scope {
    pub fn new(trigger: Value, job: Value) -> Scope {
        Scope {
            trigger: Shared::new(trigger),
            job: Shared::new(job),
            steps: BTreeMap::new(),
            vars: BTreeMap::new(),
            loops: Vec::new(),
            error: None,
            cached: None,
            path_prefix: String::new(),
        }
    }

    pub fn set_output(&mut self, step: &str, output: &Value) {
        self.steps
            .insert(step.to_owned(), Shared::new(json!({ "output": output })));
        self.cached = None;
    }

    pub fn set_var(&mut self, name: &str, value: Value) {
        self.vars.insert(name.to_owned(), Shared::new(value));
        self.cached = None;
    }

    /// Enters one iteration of loop step `loop_id`; the names of outer loops stay visible.
    pub fn set_item(&mut self, loop_id: &str, name: &str, item: Value, index: usize) {
        self.loops.push((name.to_owned(), Shared::new(item), index));
        self.path_prefix = format!("{}{loop_id}[{index}]/", self.path_prefix);
        self.cached = None;
    }

    /// Where a step runs in the job: its id, inside the loop iterations that contain it, as
    /// in `lines[2]/price`. Stable across runs of the same job.
    pub fn step_path(&self, id: &str) -> String {
        format!("{}{id}", self.path_prefix)
    }

    pub fn clear_error(&mut self) {
        self.error = None;
        self.cached = None;
    }

    /// The output of a step that has run, or null.
    pub fn output_of(&self, step: &str) -> Value {
        self.steps
            .get(step)
            .and_then(|step| step.json.get("output").cloned())
            .unwrap_or(Value::Null)
    }

    /// The index of the loop iteration this scope belongs to, if any.
    pub fn index(&self) -> Option<usize> {
        self.loops.last().map(|(_, _, index)| *index)
    }

    pub fn set_error(&mut self, error: Value) {
        self.error = Some(Shared::new(error));
        self.cached = None;
    }

    /// Takes what a loop iteration changed into the scope after the loop: the outputs of the
    /// body's steps and the variables it set. Iterations are taken in input order, so the last
    /// one wins.
    pub fn absorb(&mut self, iteration: &Scope, before_loop: &Scope, body_ids: &[String]) {
        for id in body_ids {
            if let Some(step) = iteration.steps.get(id) {
                self.steps.insert(id.clone(), step.clone());
            }
        }
        for (name, value) in &iteration.vars {
            // A variable the iteration did not set still shares its value with the scope the
            // loop started from.
            let unchanged = before_loop
                .vars
                .get(name)
                .is_some_and(|before| Arc::ptr_eq(&before.json, &value.json));
            if !unchanged {
                self.vars.insert(name.clone(), value.clone());
            }
        }
        self.cached = None;
    }

    /// The context templates evaluate against.
    pub fn template_context(&mut self) -> MjValue {
        if let Some(cached) = &self.cached {
            return cached.clone();
        }
        let mut context: BTreeMap<&str, MjValue> = BTreeMap::new();
        context.insert("trigger", self.trigger.template.clone());
        context.insert("job", self.job.template.clone());
        context.insert(
            "steps",
            MjValue::from(
                self.steps
                    .iter()
                    .map(|(id, step)| (id.clone(), step.template.clone()))
                    .collect::<BTreeMap<String, MjValue>>(),
            ),
        );
        context.insert(
            "vars",
            MjValue::from(
                self.vars
                    .iter()
                    .map(|(name, value)| (name.clone(), value.template.clone()))
                    .collect::<BTreeMap<String, MjValue>>(),
            ),
        );
        for (name, item, _) in &self.loops {
            context.insert(name.as_str(), item.template.clone());
        }
        if let Some((_, item, index)) = self.loops.last() {
            context.insert("item", item.template.clone());
            context.insert("index", MjValue::from(*index));
        }
        if let Some(error) = &self.error {
            context.insert("error", error.template.clone());
        }
        let value = MjValue::from(
            context
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect::<BTreeMap<String, MjValue>>(),
        );
        self.cached = Some(value.clone());
        value
    }

    /// The input of a jq transform: `{trigger, steps, vars, item, index, job}` as JSON.
    pub fn jq_input(&self) -> Value {
        let mut context = Map::new();
        context.insert("trigger".into(), (*self.trigger.json).clone());
        let steps: Map<String, Value> = self
            .steps
            .iter()
            .map(|(id, step)| (id.clone(), (*step.json).clone()))
            .collect();
        context.insert("steps".into(), Value::Object(steps));
        let vars: Map<String, Value> = self
            .vars
            .iter()
            .map(|(name, value)| (name.clone(), (*value.json).clone()))
            .collect();
        context.insert("vars".into(), Value::Object(vars));
        for (name, item, _) in &self.loops {
            context.insert(name.clone(), (*item.json).clone());
        }
        match self.loops.last() {
            Some((_, item, index)) => {
                context.insert("item".into(), (*item.json).clone());
                context.insert("index".into(), json!(index));
            }
            None => {
                context.insert("item".into(), Value::Null);
                context.insert("index".into(), Value::Null);
            }
        }
        context.insert("job".into(), (*self.job.json).clone());
        if let Some(error) = &self.error {
            context.insert("error".into(), (*error.json).clone());
        }
        Value::Object(context)
    }

    pub fn trigger(&self) -> &Value {
        &self.trigger.json
    }
}
