use std::time::Instant;
fn main() {
    let p = weft_recipe::jq::JqProgram::compile(".trigger.body.email").unwrap();
    let input =
        serde_json::json!({"trigger": {"body": {"email": "a@b.c"}}, "steps": {}, "vars": {}});
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        p.run_one(&input).unwrap();
    }
    println!("run: {:?} per run", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..50 {
        weft_recipe::jq::JqProgram::compile(".trigger.body.email").unwrap();
    }
    println!("compile: {:?} per compile", t.elapsed() / 50);
}
