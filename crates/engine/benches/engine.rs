//! Engine micro-benchmark: jobs per second for a 10-step recipe of transforms and sets, run in
//! this process without I/O, and the time to validate a 1,000-step recipe.
//!
//! `cargo bench -p weft-engine --bench engine`. Set `WEFT_BIN` to a built `weft` binary to
//! also measure jq in worker processes (the mode `weft run` uses).

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_connectors::{ConnectorOptions, Registry};
use weft_engine::{Engine, JqRunner, Limits, NoConnections, NoRecipes};
use weft_recipe::{Recipe, compile_recipe};
use weft_store::JobStatus;

const TEN_STEPS: &str = r#"
name: Ten steps
trigger: { webhook: { path: bench } }
steps:
  - id: normalise
    transform: '{email: (.trigger.body.email | ascii_downcase), total: (.trigger.body.lines | map(.price * .qty) | add)}'
  - id: tag
    set: { customer: "{{ steps.normalise.output.email }}", big: "{{ steps.normalise.output.total > 100 }}" }
  - id: lines
    transform: '[.trigger.body.lines[] | {sku, amount: (.price * .qty)}]'
  - id: count
    set: { lines: "{{ steps.lines.output | length }}" }
  - id: tax
    transform: '.steps.normalise.output.total * 0.2'
  - id: gross
    set: { gross: "{{ steps.normalise.output.total + steps.tax.output }}" }
  - id: skus
    transform: '[.steps.lines.output[].sku] | join(",")'
  - id: summary
    set: { text: "{{ vars.customer }} ordered {{ vars.lines }} lines ({{ steps.skus.output }}) for {{ vars.gross }}" }
  - id: flags
    transform: '{big: .vars.big, vip: (.vars.gross > 1000)}'
  - id: done
    set: { ok: true }
output: { text: "{{ vars.text }}", flags: "{{ steps.flags.output }}" }
"#;

/// The two halves of the work, to see what each costs (`WEFT_BENCH_PARTS=1`).
const SETS_ONLY: &str = r#"
name: Sets
trigger: { manual: {} }
steps:
  - { id: s1, set: { a: "{{ trigger.body.email | lower }}" } }
  - { id: s2, set: { b: "{{ vars.a }} x" } }
  - { id: s3, set: { c: "{{ steps.s1.output.a }}" } }
  - { id: s4, set: { d: 4 } }
  - { id: s5, set: { e: "{{ trigger.body.lines | length }}" } }
  - { id: s6, set: { f: "{{ vars.e * 2 }}" } }
  - { id: s7, set: { g: "{{ vars.b }}-{{ vars.c }}" } }
  - { id: s8, set: { h: true } }
  - { id: s9, set: { i: "{{ vars.f + 1 }}" } }
  - { id: s10, set: { j: "{{ vars.g }}" } }
"#;

const TRANSFORMS_ONLY: &str = r#"
name: Transforms
trigger: { manual: {} }
steps:
  - { id: t1, transform: '.trigger.body.email' }
  - { id: t2, transform: '.trigger.body.lines | length' }
  - { id: t3, transform: '.steps.t1.output' }
  - { id: t4, transform: '1' }
  - { id: t5, transform: '.steps.t2.output * 2' }
  - { id: t6, transform: '.trigger.body.email' }
  - { id: t7, transform: '.trigger.body.lines | length' }
  - { id: t8, transform: '.steps.t1.output' }
  - { id: t9, transform: '1' }
  - { id: t10, transform: '.steps.t2.output * 2' }
"#;

fn registry() -> Registry {
    Registry::builtin(&ConnectorOptions::default()).expect("the built-in connectors")
}

fn event() -> serde_json::Value {
    json!({"body": {"email": "Ann@Example.com", "lines": [
        {"sku": "a-1", "price": 12.5, "qty": 2}, {"sku": "b-2", "price": 99.0, "qty": 1}, {"sku": "c-3", "price": 3.0, "qty": 10}
    ]}})
}

fn main() {
    let registry = registry();
    let recipe = Arc::new(compile_recipe(TEN_STEPS, &registry).expect("the bench recipe is valid"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // `WEFT_BENCH=run` or `validate` measures one part only (for profiling).
    let only = std::env::var("WEFT_BENCH").unwrap_or_default();
    if only != "validate" {
        run_benchmarks(&registry, &recipe, &runtime);
    }
    if only != "run" {
        validate_benchmark(&registry);
    }
}

fn run_benchmarks(registry: &Registry, recipe: &Arc<Recipe>, runtime: &tokio::runtime::Runtime) {
    println!(
        "engine: 10-step recipe (5 jq transforms, 5 sets), {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let engine = || {
        Engine::new(
            registry.clone(),
            Arc::new(NoConnections),
            Arc::new(NoRecipes),
            Limits::default(),
        )
    };
    let threads = engine();
    measure_jobs(runtime, &threads, recipe, "jq on threads", 1);
    measure_jobs(runtime, &threads, recipe, "jq on threads", 16);
    if std::env::var("WEFT_BENCH_PARTS").is_ok() {
        for (label, text) in [
            ("10 sets only", SETS_ONLY),
            ("10 transforms only", TRANSFORMS_ONLY),
        ] {
            let part = Arc::new(compile_recipe(text, registry).expect("valid"));
            measure_jobs(runtime, &threads, &part, label, 1);
        }
    }
    if let Ok(binary) = std::env::var("WEFT_BIN") {
        let isolated = engine().with_jq_runner(JqRunner::isolated(binary.into()));
        measure_jobs(runtime, &isolated, recipe, "jq in worker processes", 1);
        measure_jobs(runtime, &isolated, recipe, "jq in worker processes", 16);
    }
}

fn validate_benchmark(registry: &Registry) {
    let big = thousand_steps();
    let rounds = 20;
    compile_recipe(&big, registry).expect("the 1,000-step recipe is valid");
    let started = Instant::now();
    for _ in 0..rounds {
        compile_recipe(&big, registry).expect("valid");
    }
    let each = started.elapsed() / rounds;
    println!(
        "validate: 1,000-step recipe ({} KiB): {:.1} ms per validation",
        big.len() / 1024,
        each.as_secs_f64() * 1000.0
    );
}

fn measure_jobs(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    recipe: &Arc<Recipe>,
    mode: &str,
    in_flight: usize,
) {
    let warm_up = 200;
    let duration = Duration::from_secs(5);
    runtime.block_on(async {
        for _ in 0..warm_up {
            let outcome = engine.run_job(Arc::clone(recipe), event()).await;
            assert_eq!(
                outcome.record.status,
                JobStatus::Succeeded,
                "{:?}",
                outcome.record.error
            );
        }
        let started = Instant::now();
        let mut jobs = 0u64;
        while started.elapsed() < duration {
            let batch = (0..in_flight).map(|_| engine.run_job(Arc::clone(recipe), event()));
            let outcomes = futures::future::join_all(batch).await;
            jobs += outcomes.len() as u64;
        }
        let rate = jobs as f64 / started.elapsed().as_secs_f64();
        println!(
            "run: {mode}, {in_flight} job(s) at a time: {rate:.0} jobs/s ({:.0} µs per job)",
            1e6 / rate * in_flight as f64
        );
    });
}

/// A valid recipe of 1,000 steps: sets and transforms reading earlier steps, with templates.
fn thousand_steps() -> String {
    let mut text = String::from(
        "name: Thousand steps\ntrigger: { manual: {} }\nsteps:\n  - id: s0\n    set: { v: 0 }\n",
    );
    for i in 1..1000 {
        if i % 2 == 0 {
            text.push_str(&format!(
                "  - id: s{i}\n    set: {{ v: \"{{{{ steps.s{}.output.v + 1 }}}}\", label: \"step {{{{ vars.v }}}} of {i}\" }}\n",
                i - 2
            ));
        } else {
            text.push_str(&format!(
                "  - id: s{i}\n    transform: '{{v: ((.steps.s{}.output.v // 0) + 1)}}'\n",
                i - 1
            ));
        }
    }
    text
}
