//! ferrostack's run configuration: the typed tree, loading (YAML file, then `FERROSTACK__...`
//! environment overrides), `${env.NAME}` substitution and validation.
//!
//! Loading and validating never touch the network or a database: every problem is found up front
//! and reported at once, each with the dotted path of the field.
//!
//! ```no_run
//! let env = ferrostack_config::Env::process();
//! let loaded = ferrostack_config::load_file(std::path::Path::new("run.yaml"), &env)?;
//! for warning in &loaded.warnings {
//!     eprintln!("warning: {warning}");
//! }
//! # Ok::<(), ferrostack_config::ConfigError>(())
//! ```

mod de;
mod env;
mod error;
mod load;
mod model;
mod paths;
mod subst;
mod validate;

pub use env::{Env, HOME_VAR, OVERRIDE_PREFIX, home_dir};
pub use error::{ConfigError, Problem, Problems};
pub use load::{Loaded, load_default, load_file, load_str};
pub use model::*;
pub use validate::SERVED_PROVIDER_TYPES;
