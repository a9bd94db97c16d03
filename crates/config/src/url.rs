//! The one check of the HTTP URLs a config names (inference base URLs, identity provider
//! endpoints, API servers), so every field takes and refuses the same things.

/// What a URL is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlUse {
    /// A base URL that paths are appended to (`<url>/chat/completions`): no query or fragment.
    Base,
    /// A URL requested as it is: a query is kept.
    Endpoint,
}

/// `http(s)://[user@]host[:port][/path]`: an `http` or `https` scheme, a host, a port between 1
/// and 65535 when one is given, no whitespace; for a [`UrlUse::Base`] no query or fragment.
pub(crate) fn check_http_url(value: &str, used_as: UrlUse) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("empty");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace");
    }
    let lower = value.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        r
    } else {
        return Err("must start with http:// or https://");
    };
    if used_as == UrlUse::Base && rest.contains(['?', '#']) {
        return Err("must not have a query or fragment");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return Err("unclosed [ in the host"),
        }
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if let Some(port) = port
        && !port.is_empty()
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err("the port is not a number between 1 and 65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{UrlUse, check_http_url};

    #[test]
    fn accepted_for_both_uses() {
        for ok in [
            "http://a",
            "http://v",
            "https://api.openai.com/v1",
            "http://127.0.0.1:8000/v1",
            "http://[::1]:80",
            "http://[::1]:80/",
            "HTTPS://u:p@host/p",
            "http://h:/",
        ] {
            for used_as in [UrlUse::Base, UrlUse::Endpoint] {
                assert_eq!(check_http_url(ok, used_as), Ok(()), "{ok} as {used_as:?}");
            }
        }
    }

    #[test]
    fn refused_for_both_uses() {
        for bad in [
            "",
            "ftp://a",
            "a.b",
            "v:8000",
            "http://",
            "http:///x",
            "http://:80",
            "http://x:0",
            "http://a:99999",
            "http://a b",
            "http://[::1",
        ] {
            for used_as in [UrlUse::Base, UrlUse::Endpoint] {
                assert!(check_http_url(bad, used_as).is_err(), "{bad} as {used_as:?}");
            }
        }
    }

    #[test]
    fn a_query_only_on_endpoints() {
        for url in ["https://a.b:8443/x?y#z", "http://x/?a"] {
            assert_eq!(check_http_url(url, UrlUse::Endpoint), Ok(()), "{url}");
            assert!(check_http_url(url, UrlUse::Base).is_err(), "{url}");
        }
    }
}
