//! Route handlers, one module per resource.

pub(crate) mod chat;
pub mod health;
pub(crate) mod models;
