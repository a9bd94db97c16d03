//! Who is calling.

use std::collections::BTreeMap;

/// An authenticated caller: a principal and its attributes (roles, teams, projects, namespaces,
/// or any other category a provider maps claims to). "No user" (`Option<User>::None`) means
/// authentication is off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// The caller's unique name (a JWT `sub`, a static token's principal, ...). Never empty.
    pub principal: String,
    /// Category → values. `None` when the provider gave no attributes at all (stored as JSON null);
    /// `Some(empty)` when it gave an empty set (stored as `{}`).
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
}

impl User {
    /// A user with attributes.
    pub fn new(principal: impl Into<String>, attributes: BTreeMap<String, Vec<String>>) -> Self {
        Self { principal: principal.into(), attributes: Some(attributes) }
    }

    /// A user with no attributes (JSON null).
    pub fn without_attributes(principal: impl Into<String>) -> Self {
        Self { principal: principal.into(), attributes: None }
    }

    /// The values of one category; empty when absent.
    pub fn values(&self, category: &str) -> &[String] {
        self.attributes.as_ref().and_then(|a| a.get(category)).map_or(&[], Vec::as_slice)
    }
}
