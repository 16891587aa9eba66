//! Plans: what a workspace may use. An operator defines them in a file (`weft serve --plans`);
//! without one there is a single plan, `unlimited`, and nothing is limited.
//!
//! ```yaml
//! default: free
//! plans:
//!   free:
//!     tasks: 1000            # action steps run per calendar month
//!     active_recipes: 5
//!     connections: 3
//!     members: 2
//!     history_keep: 7d       # the longest job history is kept
//!     concurrency: 2         # the most jobs of one recipe at once
//!   team:
//!     tasks: 100000
//!     stripe_prices: [price_1PqTeam]   # the billing provider's prices that mean this plan
//! ```

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The plan of a platform with no plans file.
pub const UNLIMITED: &str = "unlimited";

/// A measure a plan may limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Tasks,
    ActiveRecipes,
    Connections,
    Members,
}

impl Measure {
    pub const ALL: [Measure; 4] = [
        Measure::Tasks,
        Measure::ActiveRecipes,
        Measure::Connections,
        Measure::Members,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Tasks => "tasks",
            Measure::ActiveRecipes => "active_recipes",
            Measure::Connections => "connections",
            Measure::Members => "members",
        }
    }

    /// How a person says `count` of them: "1 member", "2 members".
    pub fn words_for(self, count: i64) -> &'static str {
        if count != 1 {
            return self.words();
        }
        match self {
            Measure::Tasks => "task this month",
            Measure::ActiveRecipes => "active recipe",
            Measure::Connections => "connection",
            Measure::Members => "member",
        }
    }

    /// How a person says it: "tasks this month", "active recipes".
    pub fn words(self) -> &'static str {
        match self {
            Measure::Tasks => "tasks this month",
            Measure::ActiveRecipes => "active recipes",
            Measure::Connections => "connections",
            Measure::Members => "members",
        }
    }
}

/// One plan. A limit left out is no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: String,
    pub tasks: Option<i64>,
    pub active_recipes: Option<i64>,
    pub connections: Option<i64>,
    pub members: Option<i64>,
    /// The longest job history is kept, whatever the recipe or workspace asks.
    #[serde(serialize_with = "seconds")]
    pub history_keep: Option<Duration>,
    /// The most jobs of one recipe that run at once, whatever the recipe asks.
    pub concurrency: Option<u32>,
    /// The billing provider's price ids that stand for this plan.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stripe_prices: Vec<String>,
}

fn seconds<S: serde::Serializer>(keep: &Option<Duration>, to: S) -> Result<S::Ok, S::Error> {
    match keep {
        Some(keep) => to.serialize_str(&format!("{}s", keep.as_secs())),
        None => to.serialize_none(),
    }
}

impl Plan {
    fn unlimited(name: &str) -> Plan {
        Plan {
            name: name.to_owned(),
            tasks: None,
            active_recipes: None,
            connections: None,
            members: None,
            history_keep: None,
            concurrency: None,
            stripe_prices: Vec::new(),
        }
    }

    /// The limit of a measure, if the plan has one.
    pub fn limit(&self, measure: Measure) -> Option<i64> {
        match measure {
            Measure::Tasks => self.tasks,
            Measure::ActiveRecipes => self.active_recipes,
            Measure::Connections => self.connections,
            Measure::Members => self.members,
        }
    }

    /// The `concurrency` a recipe runs with: its own, bounded by the plan's.
    pub fn concurrency_for(&self, declared: Option<u32>) -> Option<u32> {
        match (declared, self.concurrency) {
            (Some(declared), Some(ceiling)) => Some(declared.min(ceiling)),
            (declared, ceiling) => declared.or(ceiling),
        }
    }

    /// How long history is kept: `keep`, bounded by the plan's ceiling.
    pub fn keep_for(&self, keep: Duration) -> Duration {
        self.history_keep.map_or(keep, |ceiling| keep.min(ceiling))
    }
}

/// The plans of a platform and the one a workspace has when none was set for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    plans: BTreeMap<String, Plan>,
    default: String,
}

impl Default for Plans {
    fn default() -> Plans {
        let mut plans = BTreeMap::new();
        plans.insert(UNLIMITED.to_owned(), Plan::unlimited(UNLIMITED));
        Plans {
            plans,
            default: UNLIMITED.to_owned(),
        }
    }
}

impl Plans {
    /// Plans from a plans file's document; every problem found, each on a line.
    pub fn from_document(document: &Value) -> Result<Plans, String> {
        let mut problems = Vec::new();
        let Value::Object(root) = document else {
            return Err("the plans file must be a mapping with `plans:` (and `default:`)".into());
        };
        for key in root.keys() {
            if key != "plans" && key != "default" {
                problems.push(format!(
                    "unknown key `{key}`: a plans file has `plans:` and `default:`"
                ));
            }
        }
        let mut plans = BTreeMap::new();
        match root.get("plans") {
            Some(Value::Object(defined)) if !defined.is_empty() => {
                for (name, fields) in defined {
                    match plan_from(name, fields) {
                        Ok(plan) => {
                            plans.insert(name.clone(), plan);
                        }
                        Err(mut found) => problems.append(&mut found),
                    }
                }
            }
            _ => problems.push("`plans:` must map each plan's name to its limits".to_owned()),
        }
        let default = match root.get("default") {
            Some(Value::String(name)) => name.clone(),
            None if plans.len() == 1 => plans.keys().next().cloned().unwrap_or_default(),
            None => {
                problems.push("`default:` must name the plan of workspaces given none".to_owned());
                String::new()
            }
            Some(_) => {
                problems.push("`default:` must be a plan's name".to_owned());
                String::new()
            }
        };
        if !default.is_empty() && !plans.is_empty() && !plans.contains_key(&default) {
            problems.push(format!("`default:` names `{default}`, which is not a plan"));
        }
        let mut prices: BTreeMap<&str, &str> = BTreeMap::new();
        for plan in plans.values() {
            for price in &plan.stripe_prices {
                if let Some(other) = prices.insert(price, &plan.name) {
                    problems.push(format!(
                        "price `{price}` stands for two plans, `{other}` and `{}`",
                        plan.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(Plans { plans, default })
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The plan of that name, if there is one.
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    /// The plan a workspace has: the one set for it, else the default. A plan set that the
    /// file no longer defines gives way to the default.
    pub fn plan_for(&self, set: Option<&str>) -> &Plan {
        set.and_then(|name| self.plans.get(name))
            .or_else(|| self.plans.get(&self.default))
            .unwrap_or_else(|| {
                self.plans
                    .values()
                    .next()
                    .expect("a plans file defines at least one plan")
            })
    }

    /// The default plan's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The plan a billing provider's price stands for: one that lists the price, else one
    /// named like it (a price's lookup key may be the plan's name).
    pub fn for_price(&self, price: &str) -> Option<&Plan> {
        self.plans
            .values()
            .find(|plan| plan.stripe_prices.iter().any(|listed| listed == price))
            .or_else(|| self.plans.get(price))
    }

    /// Every plan, by name.
    pub fn all(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }
}

fn plan_from(name: &str, fields: &Value) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let mut plan = Plan::unlimited(name);
    let empty = Map::new();
    let fields = match fields {
        Value::Object(fields) => fields,
        Value::Null => &empty,
        _ => {
            return Err(vec![format!(
                "plan `{name}` must be a mapping of its limits"
            )]);
        }
    };
    for (key, value) in fields {
        let mut count = |slot: &mut Option<i64>| match value.as_i64() {
            Some(count) if count >= 0 => *slot = Some(count),
            _ => problems.push(format!(
                "plan `{name}`: `{key}` must be a whole number of 0 or more, not {value}"
            )),
        };
        match key.as_str() {
            "tasks" => count(&mut plan.tasks),
            "active_recipes" => count(&mut plan.active_recipes),
            "connections" => count(&mut plan.connections),
            "members" => count(&mut plan.members),
            "concurrency" => match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(ceiling) if ceiling > 0 => plan.concurrency = Some(ceiling),
                _ => problems.push(format!(
                    "plan `{name}`: `concurrency` must be a whole number of 1 or more, not {value}"
                )),
            },
            "history_keep" => match value
                .as_str()
                .map(weft_recipe::duration::parse_duration)
            {
                Some(Ok(keep)) => plan.history_keep = Some(keep),
                Some(Err(why)) => problems.push(format!("plan `{name}`: `history_keep`: {why}")),
                None => problems.push(format!(
                    "plan `{name}`: `history_keep` must be a duration such as 30d, not {value}"
                )),
            },
            "stripe_prices" => match value.as_array() {
                Some(prices) if prices.iter().all(Value::is_string) => {
                    plan.stripe_prices = prices
                        .iter()
                        .filter_map(|price| price.as_str().map(str::to_owned))
                        .collect();
                }
                _ => problems.push(format!(
                    "plan `{name}`: `stripe_prices` must be a list of price ids"
                )),
            },
            other => problems.push(format!(
                "plan `{name}`: unknown limit `{other}` (known: tasks, active_recipes, connections, members, history_keep, concurrency, stripe_prices)"
            )),
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_a_file_there_is_one_plan_and_it_limits_nothing() {
        let plans = Plans::default();
        let plan = plans.plan_for(None);
        assert_eq!(plan.name, UNLIMITED);
        assert!(Measure::ALL.iter().all(|m| plan.limit(*m).is_none()));
        assert_eq!(plan.concurrency_for(Some(7)), Some(7));
        assert_eq!(plan.concurrency_for(None), None);
    }

    #[test]
    fn a_limit_of_one_is_said_in_the_singular() {
        assert_eq!(Measure::Members.words_for(1), "member");
        assert_eq!(Measure::Members.words_for(2), "members");
        assert_eq!(Measure::ActiveRecipes.words_for(0), "active recipes");
        assert_eq!(Measure::Connections.words_for(1), "connection");
    }

    #[test]
    fn a_plans_file_gives_limits_a_default_and_prices() {
        let plans = Plans::from_document(&json!({
            "default": "free",
            "plans": {
                "free": { "tasks": 100, "concurrency": 2, "history_keep": "7d", "members": 1 },
                "team": { "tasks": 10000, "stripe_prices": ["price_team"] }
            }
        }))
        .expect("valid plans");
        let free = plans.plan_for(None);
        assert_eq!(free.name, "free");
        assert_eq!(free.limit(Measure::Tasks), Some(100));
        assert_eq!(free.concurrency_for(None), Some(2));
        assert_eq!(free.concurrency_for(Some(5)), Some(2));
        assert_eq!(free.concurrency_for(Some(1)), Some(1));
        let day = Duration::from_secs(86_400);
        assert_eq!(free.keep_for(30 * day), 7 * day);
        assert_eq!(free.keep_for(day), day);
        assert_eq!(plans.plan_for(Some("team")).tasks, Some(10000));
        assert_eq!(plans.plan_for(Some("gone")).name, "free");
        assert_eq!(
            plans.for_price("price_team").map(|p| &*p.name),
            Some("team")
        );
        assert_eq!(plans.for_price("free").map(|p| &*p.name), Some("free"));
        assert!(plans.for_price("price_other").is_none());
    }

    #[test]
    fn every_problem_of_a_plans_file_is_named() {
        let problems = Plans::from_document(&json!({
            "default": "gold",
            "plans": {
                "free": { "tasks": -1, "seats": 3, "history_keep": "soon" },
                "solo": { "concurrency": 0 },
                "team": { "stripe_prices": ["p"] },
                "pro": { "stripe_prices": ["p"] }
            }
        }))
        .expect_err("invalid plans");
        for expected in [
            "`tasks` must be a whole number",
            "unknown limit `seats`",
            "`history_keep`",
            "`concurrency` must be a whole number of 1 or more",
            "`default:` names `gold`",
            "price `p` stands for two plans",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
    }
}
