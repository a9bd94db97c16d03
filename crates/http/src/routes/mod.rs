//! Route handlers, one module per resource.

pub(crate) mod chat;
pub(crate) mod conversations;
pub mod health;
pub(crate) mod models;
pub(crate) mod responses;
