//! ferrostack's identity and access control.
//!
//! - [`User`]: who is calling.
//! - `policy`: the access-policy language's evaluator, its compiler to SQL predicates, and the
//!   authorized store layer every tenant table goes through.
//! - `authn`: authentication providers (static tokens, OAuth2 JWT/JWKS and introspection,
//!   custom endpoint, upstream header) and claims mapping. No actix here: the HTTP middleware in
//!   `ferrostack-http` calls into it.

pub mod authn;
pub mod policy;
mod user;

pub use authn::{AuthError, AuthSetupError, Authenticator, RequestInfo};
pub use policy::{AuthorizedTable, ChildTable, Key, Resource, StoreError, is_allowed, is_route_allowed};
pub use user::User;
