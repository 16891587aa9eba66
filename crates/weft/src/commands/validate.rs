//! `weft validate FILE...`: every problem of every file, in one pass.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Loaded, invalid, load_recipe, print_problems, registry};

pub fn validate(files: &[PathBuf]) -> ExitCode {
    let registry =
        match super::connector_options(false, None).and_then(|options| registry(&options)) {
            Ok(registry) => registry,
            Err(error) => {
                eprintln!("weft: {error:#}");
                return ExitCode::FAILURE;
            }
        };
    let mut all_valid = true;
    for path in files {
        match load_recipe(path, &registry) {
            Loaded::Recipe(_) => {}
            Loaded::Unreadable(message) => {
                eprintln!("{message}");
                all_valid = false;
            }
            Loaded::Invalid(problems) => {
                print_problems(path, &problems);
                all_valid = false;
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        invalid()
    }
}
