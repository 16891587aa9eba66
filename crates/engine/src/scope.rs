//! What a step can see when it runs: the trigger, earlier steps' outputs, variables, the loop
//! item and the error being handled. Values are kept as JSON (for jq and records), and as
//! template values (for minijinja) from the first time a template reads them: a job whose
//! templates never name its trigger never converts it.

use minijinja::Value as MjValue;
use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use weft_recipe::template::from_json;

/// One value in both forms, the template form made when first asked for.
#[derive(Clone, Debug)]
pub struct Shared {
    pub json: Arc<Value>,
    template: Arc<OnceLock<MjValue>>,
}

impl Shared {
    pub fn new(json: Value) -> Shared {
        Shared {
            json: Arc::new(json),
            template: Arc::default(),
        }
    }

    pub fn template(&self) -> MjValue {
        self.template.get_or_init(|| from_json(&self.json)).clone()
    }
}

/// A name templates can read, and what they find under it.
#[derive(Debug)]
enum Entry {
    Value(Shared),
    Index(usize),
    /// `steps` and `vars`: names, each with its value.
    Group(Arc<Group>),
}

/// The template context, or one of its groups: a map whose values are converted when a
/// template reads them.
#[derive(Debug, Default)]
struct Group(BTreeMap<String, Entry>);

impl Object for Group {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        Some(match self.0.get(key.as_str()?)? {
            Entry::Value(shared) => shared.template(),
            Entry::Index(index) => MjValue::from(*index),
            Entry::Group(group) => MjValue::from_dyn_object(group.clone()),
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.mapped_enumerator(|group| {
            Box::new(group.0.keys().map(|key| MjValue::from(key.as_str())))
        })
    }
}

fn group<'a>(values: impl Iterator<Item = (&'a String, &'a Shared)>) -> Entry {
    let entries = values.map(|(name, value)| (name.clone(), Entry::Value(value.clone())));
    Entry::Group(Arc::new(Group(entries.collect())))
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
        let mut context = Group::default();
        let mut add = |name: &str, entry: Entry| context.0.insert(name.to_owned(), entry);
        add("trigger", Entry::Value(self.trigger.clone()));
        add("job", Entry::Value(self.job.clone()));
        add("steps", group(self.steps.iter()));
        add("vars", group(self.vars.iter()));
        for (name, item, _) in &self.loops {
            add(name, Entry::Value(item.clone()));
        }
        if let Some((_, item, index)) = self.loops.last() {
            add("item", Entry::Value(item.clone()));
            add("index", Entry::Index(*index));
        }
        if let Some(error) = &self.error {
            add("error", Entry::Value(error.clone()));
        }
        let value = MjValue::from_object(context);
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

#[cfg(test)]
mod tests {
    use super::*;
    use weft_recipe::template::TemplateValue;

    fn render(scope: &mut Scope, text: &str) -> Value {
        let template = TemplateValue::compile_string(text).expect("a template");
        template
            .render(&scope.template_context())
            .expect("it renders")
    }

    #[test]
    fn templates_see_every_name_and_convert_only_what_they_read() {
        let mut scope = Scope::new(json!({"body": {"n": 2}}), json!({"id": "j1"}));
        scope.set_output("shape", &json!({"total": 3}));
        scope.set_var("limit", json!(10));
        assert_eq!(
            render(&mut scope, "{{ steps.shape.output.total }}"),
            json!(3)
        );
        assert!(
            scope.trigger.template.get().is_none(),
            "the trigger was converted though no template read it"
        );
        assert_eq!(
            render(&mut scope, "{{ trigger.body.n * vars.limit }}"),
            json!(20)
        );
        assert_eq!(
            render(&mut scope, "{{ steps }}"),
            json!({"shape": {"output": {"total": 3}}})
        );
        assert_eq!(
            render(
                &mut scope,
                "{% for id in steps %}{{ id }}{% endfor %} {{ job.id }}"
            ),
            json!("shape j1")
        );
        assert_eq!(
            render(&mut scope, "{{ steps.missing is undefined }}"),
            json!(true)
        );
        scope.set_item("lines", "line", json!({"sku": "a"}), 4);
        assert_eq!(
            render(&mut scope, "{{ line.sku }}{{ item.sku }}{{ index }}"),
            json!("aa4")
        );
    }
}
