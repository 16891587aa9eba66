//! `weft validate`: every problem, located, in one pass; silence and 0 for valid files.

use crate::support::{examples, recipe, weft, write_recipe};

#[test]
fn a_valid_recipe_exits_0_silently() {
    let output = weft()
        .arg("validate")
        .arg(recipe("every-step.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "{output:?}"
    );
}

#[test]
fn every_problem_of_every_file_is_printed_with_file_line_and_column() {
    let (_dir, broken) = write_recipe(
        "name: Broken\ntrigger:\n  schedule: { cron: '99 * * * *', timezone: Nowhere/City }\nsteps:\n  - id: a\n    transform: '.x | {'\n  - id: b\n    set: { v: '{{ steps.zzz.output }}' }\n    timeout: forever\n    colour: red\n",
    );
    let output = weft()
        .arg("validate")
        .arg(&broken)
        .arg(recipe("stop.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = broken.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    for (place, words) in [
        ("3:21", "not a valid cron expression"),
        ("3:45", "`Nowhere/City` is not an IANA time zone"),
        ("6:22", "jq syntax error: `{` is never closed"),
        ("8:19", "no step with id `zzz`"),
        ("9:14", "invalid duration `forever`"),
        ("10:5", "unknown key `colour` in a step"),
    ] {
        let prefix = format!("{file}:{place}");
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(&prefix) && line.contains(words)),
            "no line starting {prefix} and saying {words:?} in:\n{stderr}"
        );
    }
    assert_eq!(lines.len(), 6, "{stderr}");
}

#[test]
fn malformed_yaml_is_one_located_problem() {
    let (_dir, path) = write_recipe("name: x\nsteps: [\n  - id: a\n");
    let output = weft().arg("validate").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let prefix = format!("{}:", path.display());
    assert!(stderr.starts_with(&prefix), "{stderr}");
    let place: Vec<&str> = stderr[prefix.len()..].splitn(3, ':').collect();
    assert!(
        place[0].parse::<u32>().is_ok() && place[1].parse::<u32>().is_ok(),
        "{stderr}"
    );
}

#[test]
fn a_ten_megabyte_recipe_is_refused_with_the_limit() {
    let (_dir, path) = write_recipe(&format!(
        "name: big\ndescription: '{}'\n",
        "x".repeat(10 * 1024 * 1024)
    ));
    let output = weft().arg("validate").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(":1:1: the recipe is") && stderr.contains("limit"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let output = weft()
        .arg("validate")
        .arg("/no/such/recipe.yaml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

#[test]
fn every_example_is_valid() {
    let mut files: Vec<_> = std::fs::read_dir(examples())
        .expect("the examples folder")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "examples are missing: {files:?}");
    let output = weft().arg("validate").args(&files).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
