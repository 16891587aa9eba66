//! What a lookup in a lookup table costs: the `lookup` template function's path, from memory.
//!
//! cargo bench -p weft-runtime --bench tables
//!
//! A table of 10,000 rows (a currency code and a rate each) in a SQLite store; the first
//! lookup of a column builds its index, the next ones probe it.

use serde_json::{Map, Value, json};
use std::time::Instant;
use weft_runtime::tables::TableBook;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let folder = std::env::temp_dir().join(format!("weft-bench-tables-{}", std::process::id()));
        let store = weft_store::Store::open_data_folder(&folder)
            .await
            .expect("a store");
        store.migrate().await.expect("the schema");
        let book = TableBook::load(store).await.expect("the tables");
        book.create("default", "rates", &["code".to_owned(), "rate".to_owned()])
            .await
            .expect("a table");
        let rows: Vec<Map<String, Value>> = (0..10_000)
            .map(|n| {
                let mut row = Map::new();
                row.insert("code".to_owned(), json!(format!("C{n:05}")));
                row.insert(
                    "rate".to_owned(),
                    json!(format!("{}.{:02}", n / 100, n % 100)),
                );
                row
            })
            .collect();
        book.replace_rows("default", "rates", rows)
            .await
            .expect("the rows");

        let first = Instant::now();
        book.lookup("default", "rates", "code", &json!("C09999"))
            .expect("a lookup");
        println!(
            "first lookup of a column (builds its index over 10,000 rows): {:?}",
            first.elapsed()
        );

        let wanted: Vec<Value> = (0..1_000)
            .map(|n| json!(format!("C{:05}", n * 7 % 10_000)))
            .collect();
        let rounds = 1_000;
        let start = Instant::now();
        let mut found = 0;
        for _ in 0..rounds {
            for value in &wanted {
                found += usize::from(
                    book.lookup("default", "rates", "code", value)
                        .expect("a lookup")
                        .is_some(),
                );
            }
        }
        let each = start.elapsed() / (rounds * wanted.len() as u32);
        println!("lookup of a row by an indexed column: {each:?} each ({found} found)");
        let _ = std::fs::remove_dir_all(&folder);
    });
}
