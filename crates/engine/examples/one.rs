use std::sync::Arc;
use std::time::Instant;
use weft_connectors::{ConnectorOptions, Registry};
use weft_engine::{Engine, Limits, NoConnections, RecipeLibrary};
struct NoRecipes;
impl RecipeLibrary for NoRecipes {
    fn find(&self, n: &str) -> Result<Arc<weft_recipe::Recipe>, String> {
        Err(n.into())
    }
}
fn main() {
    let registry = Registry::builtin(&ConnectorOptions::default()).unwrap();
    let text =
        "name: T\ntrigger: { manual: {} }\nsteps:\n  - { id: t1, transform: '.trigger.a' }\n";
    let recipe = Arc::new(weft_recipe::compile_recipe(text, &registry).unwrap());
    let engine = Engine::new(
        registry,
        Arc::new(NoConnections),
        Arc::new(NoRecipes),
        Limits::default(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..100 {
            engine
                .run_job(recipe.clone(), serde_json::json!({"a": 1}))
                .await;
        }
        let t = Instant::now();
        for _ in 0..20000 {
            engine
                .run_job(recipe.clone(), serde_json::json!({"a": 1}))
                .await;
        }
        println!("one-transform job: {:?}", t.elapsed() / 20000);
    });
    let p = weft_recipe::jq::JqProgram::compile(".trigger.a").unwrap();
    let t = Instant::now();
    for _ in 0..1000 {
        p.run_one(&serde_json::json!({"trigger": {"a": 1}}))
            .unwrap();
    }
    println!("bare run: {:?}", t.elapsed() / 1000);
}
