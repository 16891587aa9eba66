//! The `--plans` file: the plans an operator offers, as YAML (see `docs/billing.md`).

use anyhow::Context;
use std::path::Path;

use weft_runtime::plans::Plans;

/// The plans of a file; every problem of it at once, naming the file.
pub fn load(path: &Path) -> anyhow::Result<Plans> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plans file {}", path.display()))?;
    parse(&text).with_context(|| format!("in the plans file {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<Plans> {
    let document: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|error| anyhow::anyhow!("{error}"))?;
    Plans::from_document(&document).map_err(|problems| anyhow::anyhow!("{problems}"))
}

/// The plans of `--plans`, or the one unlimited plan without it.
pub fn load_or_default(path: Option<&Path>) -> anyhow::Result<Plans> {
    path.map_or_else(|| Ok(Plans::default()), load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plans_file_reads_as_plans() {
        let plans = parse(
            "default: free\nplans:\n  free:\n    tasks: 100\n    history_keep: 7d\n  team:\n    tasks: 5000\n",
        )
        .expect("valid plans");
        assert_eq!(plans.plan_for(None).tasks, Some(100));
        assert_eq!(plans.plan_for(Some("team")).tasks, Some(5000));
    }

    #[test]
    fn a_broken_plans_file_says_where() {
        let error = parse("plans:\n  free: [1, 2\n").expect_err("broken YAML");
        let text = format!("{error:#}");
        assert!(text.contains("line"), "{text}");
    }
}
