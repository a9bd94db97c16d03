//! `/openapi.json` describes every route: the routes are read from where they are registered (the
//! `web::resource("...")` and `.route("...", web::METHOD())` calls in this crate's sources), so a
//! route added later fails this test until it is described.

use std::path::{Path, PathBuf};

use ferrostack_testkit::Test;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("openapi::every_registered_route_is_described", || async { every_route_described() }),
        Test::plain("openapi::every_described_route_is_registered", || async { every_described_route_registered() }),
    ]
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `{model_id:.+}` → `{model_id}`: actix's pattern syntax to OpenAPI's.
fn openapi_path(actix: &str) -> String {
    let mut out = String::new();
    let mut rest = actix;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let name = rest[open + 1..close].split(':').next().unwrap_or_default();
        out.push('{');
        out.push_str(name);
        out.push('}');
        rest = rest.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The methods registered in `text` (a resource's chain, or one `.route(...)` call).
fn methods(text: &str) -> Vec<&'static str> {
    METHODS.iter().copied().filter(|m| text.contains(&format!("web::{m}()"))).collect()
}

/// Every (path, method) registered in the crate's sources.
fn registered() -> Vec<(String, &'static str)> {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut routes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // `web::resource("P")` followed by its `.route(web::m()...)` calls, up to the next resource.
        let pieces: Vec<&str> = text.split("web::resource(\"").skip(1).collect();
        for piece in pieces {
            let (path, chain) = piece.split_once('"').unwrap();
            let chain = chain.split(".service(").next().unwrap_or(chain);
            for m in methods(chain) {
                routes.push((openapi_path(path), m));
            }
        }
        // `.route("P", web::m().to(...))` on the app itself.
        for piece in text.split(".route(\"").skip(1) {
            let (path, call) = piece.split_once('"').unwrap();
            let call = call.split(".to(").next().unwrap_or(call);
            for m in methods(call) {
                routes.push((openapi_path(path), m));
            }
        }
    }
    assert!(routes.len() > 10, "found too few routes in the sources: {routes:?}");
    routes
}

fn every_route_described() {
    let doc = ferrostack_http::openapi_document();
    let paths = doc["paths"].as_object().unwrap();
    let mut missing = Vec::new();
    for (path, method) in registered() {
        if paths.get(&path).and_then(|p| p.get(method)).is_none() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(missing.is_empty(), "routes missing from /openapi.json (crates/http/src/openapi.rs): {missing:?}");
}

fn every_described_route_registered() {
    let registered = registered();
    let doc = ferrostack_http::openapi_document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                registered.iter().any(|(p, m)| p == path && m == method),
                "/openapi.json describes {method} {path}, which no route serves"
            );
        }
    }
}
