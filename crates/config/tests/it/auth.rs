//! `server.auth.provider_config`: every provider type, its defaults, its validation, and that its
//! secrets never show.

use ferrostack_config::{AuthCacheConfig, AuthProviderConfig, KubernetesReview, OAuth2TokenConfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{assert_problem, load, problems, yaml};

const P: &str = "server.auth.provider_config";

fn with_provider(provider: Value) -> String {
    yaml(&json!({"version": 2, "server": {"auth": {"provider_config": provider}}}))
}

fn provider(provider: Value) -> AuthProviderConfig {
    let Some(p) = load(&with_provider(provider), &[]).config.server.auth.provider_config else { panic!("no provider") };
    p
}

fn oauth2(v: Value) -> OAuth2TokenConfig {
    match provider(v) {
        AuthProviderConfig::OAuth2Token(c) => c,
        other => panic!("not oauth2_token: {other:?}"),
    }
}

#[test]
fn oauth2_jwks_defaults() {
    let c = oauth2(json!({"type": "oauth2_token", "jwks": {"uri": "https://idp.example.com/jwks"}}));
    assert_eq!(c.audience, "ferrostack");
    assert_eq!(c.audience, ferrostack_config::default_audience());
    assert_eq!(c.issuer, None);
    assert!(c.verify_tls);
    assert_eq!(c.tls_cafile, None);
    assert_eq!(c.timeout_ms, 10_000);
    assert_eq!(c.claims_mapping, ferrostack_config::default_oauth2_claims_mapping());
    assert_eq!(c.claims_mapping["sub"], "users", "identity claims never feed roles");
    assert_eq!(c.claims_mapping["username"], "users");
    assert_eq!(c.claims_mapping["groups"], "teams");
    assert_eq!(c.claims_mapping["tenant"], "namespaces");
    assert_eq!(c.claims_mapping.len(), 7);
    let j = c.jwks.expect("jwks");
    assert_eq!(j.key_recheck_period, 3600);
    assert!(j.token.is_none());
    assert!(c.introspection.is_none());
}

#[test]
fn oauth2_introspection_and_explicit_fields() {
    let c = oauth2(json!({
        "type": "oauth2_token", "audience": "api://x", "issuer": "https://idp", "verify_tls": false,
        "tls_cafile": "/etc/ca.pem", "claims_mapping": {"realm_access.roles": "roles"}, "timeout_ms": 500,
        "introspection": {"url": "https://idp/introspect", "client_id": "c", "client_secret": "s"},
    }));
    assert_eq!(c.audience, "api://x");
    assert_eq!(c.issuer.as_deref(), Some("https://idp"));
    assert!(!c.verify_tls);
    assert_eq!(c.claims_mapping.len(), 1, "a given mapping replaces the default");
    let i = c.introspection.expect("introspection");
    assert_eq!(i.client_secret.expose_secret(), "s");
    assert!(!i.send_secret_in_body);
}

#[test]
fn other_types_parse() {
    match provider(json!({"type": "custom", "endpoint": "http://auth:8080/check"})) {
        AuthProviderConfig::Custom(c) => {
            assert_eq!(c.endpoint, "http://auth:8080/check");
            assert_eq!(c.timeout_ms, ferrostack_config::default_auth_timeout_ms());
        }
        other => panic!("{other:?}"),
    }
    match provider(json!({"type": "upstream_header", "principal_header": "X-User"})) {
        AuthProviderConfig::UpstreamHeader(c) => {
            assert_eq!(c.principal_header, "X-User");
            assert_eq!(c.attributes_header, None);
        }
        other => panic!("{other:?}"),
    }
    match provider(json!({"type": "static", "tokens": [
        {"token": "t1", "principal": "alice", "attributes": {"roles": ["admin"]}},
        {"token": "t2", "principal": "bob"},
    ]})) {
        AuthProviderConfig::Static(c) => {
            assert_eq!(c.tokens.len(), 2);
            assert_eq!(c.tokens[0].token.expose_secret(), "t1");
            assert_eq!(c.tokens[0].attributes["roles"], vec!["admin".to_owned()]);
            assert!(c.tokens[1].attributes.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn env_substitution_switches_auth_off_and_on() {
    let text = "version: 2\nserver:\n  auth:\n    provider_config:\n      type: ${env.AUTH_TYPE:=}\n      \
                jwks: {uri: '${env.JWKS_URI}'}\n";
    assert!(load(text, &[]).config.server.auth.provider_config.is_none(), "empty type: auth off");
    let c = load(text, &[("AUTH_TYPE", "oauth2_token"), ("JWKS_URI", "https://idp/jwks")]);
    assert!(matches!(c.config.server.auth.provider_config, Some(AuthProviderConfig::OAuth2Token(_))));
}

#[test]
fn unknown_fields_and_types_are_refused() {
    let p = problems(&with_provider(json!({"type": "oauth2_token", "jwks": {"uri": "http://x", "urii": 1}})), &[]);
    assert!(p.to_string().contains("urii"), "{p}");
    let p = problems(&with_provider(json!({"type": "upstream_header", "principal_header": "X", "extra": 1})), &[]);
    assert!(p.to_string().contains("extra"), "{p}");
    let p = problems(&with_provider(json!({"type": "ldap"})), &[]);
    assert!(p.to_string().contains("ldap"), "{p}");
    let p = problems(&with_provider(json!({"type": "custom"})), &[]);
    assert!(p.to_string().contains("endpoint"), "{p}");
}

#[test]
fn github_and_kubernetes_parse_with_the_reference_defaults() {
    match provider(json!({"type": "github_token"})) {
        AuthProviderConfig::GithubToken(c) => {
            assert_eq!(c.github_api_base_url, "https://api.github.com");
            assert_eq!(c.claims_mapping, ferrostack_config::default_github_claims_mapping());
            assert_eq!(c.claims_mapping["login"], "users");
            assert_eq!(c.claims_mapping["organizations"], "teams");
            assert_eq!(c.cache, AuthCacheConfig::default());
        }
        other => panic!("{other:?}"),
    }
    match provider(json!({"type": "kubernetes", "api_server_url": "https://k:6443", "tls_cafile": "/ca.crt"})) {
        AuthProviderConfig::Kubernetes(c) => {
            assert_eq!(c.api_server_url, "https://k:6443");
            assert!(c.verify_tls);
            assert_eq!(c.tls_cafile.as_deref(), Some("/ca.crt"));
            assert_eq!(c.review, KubernetesReview::SelfSubjectReview);
            assert_eq!(c.claims_mapping["username"], "users");
            assert_eq!(c.claims_mapping["groups"], "roles");
        }
        other => panic!("{other:?}"),
    }
    match provider(json!({"type": "kubernetes"})) {
        AuthProviderConfig::Kubernetes(c) => assert_eq!(c.api_server_url, "https://kubernetes.default.svc"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn github_and_kubernetes_problems() {
    #[rustfmt::skip]
    let cases: &[(Value, &str, &[&str])] = &[
        (json!({"type": "github_token", "github_api_base_url": "api.github.com"}), "github_api_base_url", &["not a valid URL"]),
        (json!({"type": "github_token", "claims_mapping": {"login": ""}}), "claims_mapping.login", &["must not be empty"]),
        (json!({"type": "github_token", "token": "x"}), "token", &["unknown field `token`"]),
        (json!({"type": "kubernetes", "api_server_url": "ftp://k"}), "api_server_url", &["not a valid URL"]),
        (json!({"type": "kubernetes", "claims_mapping": {"groups": " "}}), "claims_mapping.groups", &["must not be empty"]),
        (json!({"type": "kubernetes", "review": "token_review", "token_file": ""}), "token_file", &["must not be empty"]),
        (json!({"type": "kubernetes", "review": "subject_access_review"}), "review", &["unknown variant"]),
        (json!({"type": "kubernetes", "cache": {"max_entries": 0}}), "cache.max_entries", &["between 1 and"]),
        (json!({"type": "custom", "endpoint": "http://a", "forward_headers": ["Authorization"]}), "forward_headers[0]", &["Authorization"]),
    ];
    for (config, field, words) in cases {
        let p = problems(&with_provider(config.clone()), &[]);
        let at = format!("{P}.{field}");
        if p.at(&at).is_some() {
            assert_problem(&p, &at, words, field);
        } else {
            // serde's errors inside the internally tagged provider are reported at the provider.
            assert!(words.iter().all(|w| p.to_string().contains(w)), "{field}: {p}");
        }
    }
}

#[test]
fn oauth2_problems() {
    let cases: Vec<(Value, String, Vec<&str>)> = vec![
        (json!({"type": "oauth2_token"}), P.to_owned(), vec!["neither"]),
        (
            json!({"type": "oauth2_token", "jwks": {"uri": "http://a"},
                "introspection": {"url": "http://a", "client_id": "c", "client_secret": "s"}}),
            P.to_owned(),
            vec!["both"],
        ),
        (json!({"type": "oauth2_token", "jwks": {"uri": "ftp://a"}}), format!("{P}.jwks.uri"), vec!["http"]),
        (json!({"type": "oauth2_token", "jwks": {"uri": "https://"}}), format!("{P}.jwks.uri"), vec!["host"]),
        (json!({"type": "oauth2_token", "jwks": {"uri": "idp/jwks"}}), format!("{P}.jwks.uri"), vec!["URL"]),
        (
            json!({"type": "oauth2_token", "jwks": {"uri": "http://a", "key_recheck_period": 0}}),
            format!("{P}.jwks.key_recheck_period"),
            vec!["between"],
        ),
        (
            json!({"type": "oauth2_token", "jwks": {"uri": "http://a", "token": ""}}),
            format!("{P}.jwks.token"),
            vec!["empty"],
        ),
        (
            json!({"type": "oauth2_token", "audience": " ", "jwks": {"uri": "http://a"}}),
            format!("{P}.audience"),
            vec!["empty"],
        ),
        (
            json!({"type": "oauth2_token", "issuer": "", "jwks": {"uri": "http://a"}}),
            format!("{P}.issuer"),
            vec!["empty"],
        ),
        (
            json!({"type": "oauth2_token", "timeout_ms": 0, "jwks": {"uri": "http://a"}}),
            format!("{P}.timeout_ms"),
            vec!["between"],
        ),
        (
            json!({"type": "oauth2_token", "claims_mapping": {"groups": ""}, "jwks": {"uri": "http://a"}}),
            format!("{P}.claims_mapping.groups"),
            vec!["empty"],
        ),
        (
            json!({"type": "oauth2_token", "claims_mapping": {"": "roles"}, "jwks": {"uri": "http://a"}}),
            format!("{P}.claims_mapping"),
            vec!["empty"],
        ),
        (
            json!({"type": "oauth2_token",
                "introspection": {"url": "mailto:x", "client_id": "", "client_secret": ""}}),
            format!("{P}.introspection.url"),
            vec!["URL"],
        ),
        (
            json!({"type": "oauth2_token",
                "introspection": {"url": "http://a", "client_id": "", "client_secret": "s"}}),
            format!("{P}.introspection.client_id"),
            vec!["empty"],
        ),
        (
            json!({"type": "oauth2_token",
                "introspection": {"url": "http://a", "client_id": "c", "client_secret": ""}}),
            format!("{P}.introspection.client_secret"),
            vec!["empty"],
        ),
    ];
    for (provider, path, words) in cases {
        let case = provider.to_string();
        let p = problems(&with_provider(provider), &[]);
        assert_problem(&p, &path, &words, &case);
    }
}

#[test]
fn other_problems() {
    let cases: Vec<(Value, String, Vec<&str>)> = vec![
        (json!({"type": "custom", "endpoint": "not a url"}), format!("{P}.endpoint"), vec!["URL"]),
        (
            json!({"type": "custom", "endpoint": "http://a", "timeout_ms": 0}),
            format!("{P}.timeout_ms"),
            vec!["between"],
        ),
        (json!({"type": "upstream_header", "principal_header": ""}), format!("{P}.principal_header"), vec!["empty"]),
        (
            json!({"type": "upstream_header", "principal_header": "X User"}),
            format!("{P}.principal_header"),
            vec!["header name"],
        ),
        (
            json!({"type": "upstream_header", "principal_header": "X-User", "attributes_header": "a:b"}),
            format!("{P}.attributes_header"),
            vec!["header name"],
        ),
        (
            json!({"type": "upstream_header", "principal_header": "Authorization"}),
            format!("{P}.principal_header"),
            vec!["Authorization"],
        ),
        (
            json!({"type": "upstream_header", "principal_header": "X-User", "trusted_proxies": ["10.0.0.1", "10.0.0.0/33"]}),
            format!("{P}.trusted_proxies[1]"),
            vec!["10.0.0.0/33", "network"],
        ),
        (
            json!({"type": "upstream_header", "principal_header": "X-User", "trusted_proxies": ["proxy.local"]}),
            format!("{P}.trusted_proxies[0]"),
            vec!["proxy.local"],
        ),
        (json!({"type": "static", "tokens": []}), format!("{P}.tokens"), vec!["at least one"]),
        (
            json!({"type": "static", "tokens": [{"token": "", "principal": "a"}]}),
            format!("{P}.tokens[0].token"),
            vec!["empty"],
        ),
        (
            json!({"type": "static", "tokens": [{"token": "a b", "principal": "a"}]}),
            format!("{P}.tokens[0].token"),
            vec!["whitespace"],
        ),
        (
            json!({"type": "static", "tokens": [{"token": "t", "principal": "a"}, {"token": "t", "principal": "b"}]}),
            format!("{P}.tokens[1].token"),
            vec!["tokens[0]"],
        ),
        (
            json!({"type": "static", "tokens": [{"token": "t", "principal": ""}]}),
            format!("{P}.tokens[0].principal"),
            vec!["empty"],
        ),
    ];
    for (provider, path, words) in cases {
        let case = provider.to_string();
        let p = problems(&with_provider(provider), &[]);
        assert_problem(&p, &path, &words, &case);
        assert!(!p.to_string().contains("Tok-Secret"), "{p}");
    }
}

#[test]
fn secrets_never_show() {
    const SECRETS: [&str; 4] = ["Client-Secret-1", "Jwks-Token-2", "Static-Tok-3", "Static-Tok-4"];
    let static_cfg = with_provider(json!({"type": "static", "tokens": [
        {"token": SECRETS[2], "principal": "alice"},
        {"token": "${env.TOK}", "principal": "bob"},
    ]}));
    let intro = with_provider(json!({"type": "oauth2_token",
        "introspection": {"url": "https://idp/i", "client_id": "cid", "client_secret": "${env.CS}"}}));
    let jwks = with_provider(json!({"type": "oauth2_token", "jwks": {"uri": "https://idp/j", "token": SECRETS[1]}}));
    let env = [("CS", SECRETS[0]), ("TOK", SECRETS[3])];
    for text in [static_cfg, intro, jwks] {
        let l = load(&text, &env);
        let shown = format!("{l:?}\n{:?}\n{}", l.config.server.auth, l.config.redacted_json());
        for s in SECRETS {
            assert!(!shown.contains(s), "{s} shown in:\n{shown}");
        }
        assert!(shown.contains("********"), "{shown}");
    }
    // A duplicate static token is reported without quoting it.
    let p = problems(
        &with_provider(json!({"type": "static", "tokens": [
            {"token": SECRETS[2], "principal": "a"}, {"token": SECRETS[2], "principal": "b"}]})),
        &[],
    );
    assert!(!p.to_string().contains(SECRETS[2]), "{p}");
    // redacted_json keeps the non-secret fields.
    let l = load(
        &with_provider(json!({"type": "oauth2_token",
            "introspection": {"url": "https://idp/i", "client_id": "cid", "client_secret": "x"}})),
        &[],
    );
    let v = l.config.redacted_json();
    let i = &v["server"]["auth"]["provider_config"]["introspection"];
    assert_eq!(i["client_id"], json!("cid"));
    assert_eq!(i["client_secret"], json!("********"));
    assert_eq!(v["server"]["auth"]["provider_config"]["type"], json!("oauth2_token"));
}

#[test]
fn docs_state_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let row = |field: &str| {
        doc.lines()
            .find(|l| l.starts_with(&format!("| `{field}` ")))
            .unwrap_or_else(|| panic!("no row for {field}"))
            .to_owned()
    };
    assert!(row("audience").contains(&format!("`{}`", ferrostack_config::default_audience())));
    assert!(row("jwks.key_recheck_period").contains(&format!("`{}`", ferrostack_config::default_key_recheck_period())));
    assert!(row("timeout_ms").contains(&format!("`{}`", ferrostack_config::default_auth_timeout_ms())));
    for (field, default) in [
        ("cache.ttl_seconds", ferrostack_config::default_auth_cache_ttl_seconds().to_string()),
        ("cache.negative_ttl_seconds", ferrostack_config::default_auth_cache_negative_ttl_seconds().to_string()),
        ("cache.max_entries", ferrostack_config::default_auth_cache_max_entries().to_string()),
        ("github_api_base_url", ferrostack_config::default_github_api_base_url()),
        ("api_server_url", ferrostack_config::default_kubernetes_api_server_url()),
        ("token_file", ferrostack_config::default_kubernetes_token_file()),
    ] {
        assert!(row(field).contains(&format!("`{default}`")), "{field}: {}", row(field));
    }
    for header in ferrostack_config::default_custom_forward_headers() {
        assert!(row("forward_headers").contains(&format!("`{header}`")), "{header}");
    }
    let mapping = row("claims_mapping");
    for (claim, category) in ferrostack_config::default_oauth2_claims_mapping() {
        assert!(mapping.contains(&format!("`{claim}`")) && mapping.contains(&format!("`{category}`")), "{claim}");
    }
}
