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

mod auth;
mod coverage;
mod de;
mod env;
mod error;
mod inference;
mod limits;
mod load;
mod model;
mod paths;
mod policy;
mod subst;
mod url;
mod validate;

pub use auth::{
    AuthCacheConfig, AuthConfig, AuthProviderConfig, CustomAuthConfig, GithubTokenConfig, IDENTITY_CATEGORY,
    IntrospectionConfig, IpNetwork, JwksConfig, KubernetesAuthConfig, KubernetesReview, OAuth2TokenConfig, StaticToken,
    StaticTokensConfig, UpstreamHeaderConfig, default_audience, default_auth_cache_max_entries,
    default_auth_cache_negative_ttl_seconds, default_auth_cache_ttl_seconds, default_auth_timeout_ms,
    default_custom_forward_headers, default_github_api_base_url, default_github_claims_mapping,
    default_key_recheck_period, default_kubernetes_api_server_url, default_kubernetes_claims_mapping,
    default_kubernetes_token_file, default_oauth2_claims_mapping,
};
pub use coverage::{Coverage, SERVED_APIS, is_served_provider, served_provider_types};
pub use env::{Env, HOME_VAR, OVERRIDE_PREFIX, home_dir};
pub use error::{ConfigError, Problem, Problems};
pub use inference::{
    DEFAULT_OLLAMA_URL, DEFAULT_OPENAI_URL, ECHO_PROVIDER_TYPE, InferenceProviderConfig, InferenceProviderKind,
    default_inference_connect_timeout_ms, default_inference_max_idle_connections, default_inference_timeout_ms,
    default_refresh_interval_seconds,
};
pub use limits::LimitsConfig;
pub use load::{Loaded, load_default, load_file, load_str};
pub use model::*;
pub use policy::{
    AccessRule, Action, CONDITION_FORMS, Condition, Conditions, Effect, PathPattern, Pattern, ResourcePattern,
    RouteRule, Scope,
};
pub use subst::DisabledEntry;
