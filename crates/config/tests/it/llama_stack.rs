//! Run configs in the shape of Llama Stack's distributions (`tests/llama-stack/`): each loads as
//! it is, serves what ferrostack serves, and lists exactly what it accepts and ignores; a typo in
//! a key ferrostack serves still fails, naming it.

use std::path::Path;

use ferrostack_config::{AuthProviderConfig, BackendConfig, ModelType};

use crate::{assert_problem, load, problems};

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/llama-stack").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const STARTER_ENV: [(&str, &str); 3] =
    [("VLLM_URL", "http://vllm:8000/v1"), ("SQLITE_STORE_DIR", "/data/starter"), ("HOME", "/home/u")];

const PG_ENV: [(&str, &str); 3] =
    [("INFERENCE_MODEL", "llama-3b"), ("VLLM_URL", "http://vllm:8000/v1"), ("POSTGRES_HOST", "db")];

#[test]
fn starter_loads_and_lists_exactly_what_it_ignores() {
    let l = load(&read("starter.yaml"), &STARTER_ENV);
    let c = &l.coverage;
    assert_eq!(
        c.served,
        strings(&[
            "inference provider vllm (remote::vllm)",
            "inference provider fireworks (remote::fireworks)",
            "inference provider together (remote::together)",
            "inference provider openai (remote::openai)",
            "inference provider groq (remote::groq)",
            "inference provider sambanova (remote::sambanova)",
            "1 model",
        ])
    );
    let ignored = strings(&[
        "providers.agents[0] meta-reference (inline::meta-reference)",
        "providers.batches[0] reference (inline::reference)",
        "providers.datasetio[0] huggingface (remote::huggingface)",
        "providers.eval[0] meta-reference (inline::meta-reference)",
        "providers.files[0] meta-reference-files (inline::localfs)",
        "providers.inference[6] bedrock (remote::bedrock)",
        "providers.inference[9] anthropic (remote::anthropic)",
        "providers.inference[14] sentence-transformers (inline::sentence-transformers)",
        "providers.post_training[0] torchtune-cpu (inline::torchtune-cpu)",
        "providers.safety[0] llama-guard (inline::llama-guard)",
        "providers.scoring[0] basic (inline::basic)",
        "providers.scoring[1] braintrust (inline::braintrust)",
        "providers.tool_runtime[0] tavily-search (remote::tavily-search)",
        "providers.tool_runtime[1] rag-runtime (inline::rag-runtime)",
        "providers.vector_io[0] faiss (inline::faiss)",
        "providers.vector_io[1] sqlite-vec (inline::sqlite-vec)",
        "api agents",
        "api batches",
        "api datasetio",
        "api eval",
        "api files",
        "api post_training",
        "api safety",
        "api scoring",
        "api tool_runtime",
        "api vector_io",
        "registered_resources.shields",
        "registered_resources.tool_groups",
        "safety",
        "vector_stores",
    ]);
    assert_eq!(c.ignored, ignored);
    assert_eq!(
        c.disabled,
        strings(&[
            "providers.inference[0] cerebras (remote::cerebras)",
            "providers.inference[1] ollama (remote::ollama)",
            "providers.inference[3] tgi (remote::tgi)",
            "providers.inference[7] nvidia (remote::nvidia)",
            "providers.inference[10] vertexai (remote::vertexai)",
            "providers.inference[13] azure (remote::azure)",
            "providers.vector_io[2] chromadb (remote::chromadb)",
            "providers.vector_io[3] pgvector (remote::pgvector)",
        ])
    );
    assert_eq!(
        c.skipped_models,
        strings(&["registered_resources.models[2] titan (provider bedrock is remote::bedrock, not served)"])
    );
    // One warning lists it all, and it comes first; the others are about other things.
    let warning = format!(
        "accepted and ignored (not served by ferrostack): {}; models skipped: {}",
        ignored.join(", "),
        c.skipped_models.join(", ")
    );
    assert_eq!(l.warnings.first(), Some(&warning));
    assert_eq!(l.warnings.iter().filter(|w| w.contains("not served")).count(), 1, "{:#?}", l.warnings);
    assert!(c.to_string().starts_with("served: inference provider vllm (remote::vllm), "), "{c}");

    let cfg = &l.config;
    assert_eq!(cfg.distro_name.as_deref(), Some("starter"));
    let BackendConfig::KvSqlite(kv) = &cfg.storage.backends["kv_default"] else { panic!("kv_default") };
    assert_eq!(kv.db_path, "/data/starter/kvstore.db");
    let m = &cfg.registered_resources.models;
    assert_eq!(m.len(), 2, "the model switched off by OLLAMA_MODEL is dropped: {m:?}");
    assert_eq!((m[0].model_id.as_str(), m[0].provider_id.as_str()), ("llama-3.2-3b", "vllm"));

    // A variable switches a provider on, and its models with it.
    let mut env = STARTER_ENV.to_vec();
    env.extend([("OLLAMA_URL", "http://ollama:11434"), ("OLLAMA_MODEL", "yes")]);
    let l = load(&read("starter.yaml"), &env);
    assert!(l.coverage.served.contains(&"inference provider ollama (remote::ollama)".to_owned()));
    assert!(l.coverage.served.contains(&"2 models".to_owned()), "{:?}", l.coverage.served);
    assert!(!l.coverage.disabled.iter().any(|d| d.contains("ollama")));

    // Without OLLAMA_URL, a model of the disabled ollama is skipped and listed, not an error.
    let mut env = STARTER_ENV.to_vec();
    env.push(("OLLAMA_MODEL", "yes"));
    let l = load(&read("starter.yaml"), &env);
    assert!(
        l.coverage
            .skipped_models
            .contains(&"registered_resources.models[1] ollama-model (provider ollama is disabled)".to_owned()),
        "{:?}",
        l.coverage.skipped_models
    );
}

#[test]
fn postgres_demo_with_kubernetes_auth() {
    let l = load(&read("postgres-demo.yaml"), &PG_ENV);
    let c = &l.coverage;
    assert_eq!(
        c.served,
        strings(&["inference provider vllm-inference (remote::vllm)", "1 model", "authentication kubernetes"])
    );
    assert_eq!(
        c.ignored,
        strings(&[
            "providers.agents[0] builtin (inline::builtin)",
            "providers.inference[1] sentence-transformers (inline::sentence-transformers)",
            "providers.inference[2] transformers (inline::transformers)",
            "providers.safety[0] llama-guard (inline::llama-guard)",
            "providers.tool_runtime[0] brave-search (remote::brave-search)",
            "providers.tool_runtime[1] model-context-protocol (remote::model-context-protocol)",
            "api agents",
            "api safety",
            "api tool_runtime",
            "api vector_io",
            "registered_resources.shields",
        ])
    );
    assert_eq!(c.disabled, strings(&["providers.vector_io[0] chromadb (remote::chromadb)"]));
    assert_eq!(
        c.skipped_models,
        strings(&[
            "registered_resources.models[1] nomic-embed-text-v1.5 (provider sentence-transformers is inline::sentence-transformers, not served)",
            "registered_resources.models[2] Qwen/Qwen3-Reranker-0.6B (provider transformers is inline::transformers, not served)",
        ])
    );
    assert_eq!(l.config.registered_resources.models[2].model_type, ModelType::Rerank);
    let Some(AuthProviderConfig::Kubernetes(k)) = &l.config.server.auth.provider_config else { panic!("kubernetes") };
    assert_eq!(k.api_server_url, "https://kubernetes.default.svc");
    assert_eq!(k.tls_cafile, None, "an empty CA variable is no CA file");
    assert_eq!(l.config.server.auth.access_policy.len(), 4);
    // The reference's KV table name is ignored, with its own warning.
    assert!(
        l.warnings.iter().any(|w| w.starts_with("storage.backends.kv_default.table_name: ignored")),
        "{:#?}",
        l.warnings
    );
    let BackendConfig::SqlPostgres(pg) = &l.config.storage.backends["sql_default"] else { panic!("sql_default") };
    assert_eq!((pg.host.as_str(), pg.db.as_str()), ("db", "llamastack"));

    // INFERENCE_MODEL has no default: the reference refuses to start without it, so does ferrostack.
    let p = problems(&read("postgres-demo.yaml"), &[("VLLM_URL", "http://vllm:8000/v1")]);
    assert_problem(&p, "registered_resources.models[0].model_id", &["'INFERENCE_MODEL'"], "required variable");
}

#[test]
fn k8s_benchmark_with_github_auth() {
    let l = load(&read("k8s-benchmark.yaml"), &[("INFERENCE_MODEL", "meta-llama/Llama-3.2-3B-Instruct")]);
    let c = &l.coverage;
    assert_eq!(l.config.version, 2, "version '2' written as text");
    assert_eq!(l.config.image_name.as_deref(), Some("kubernetes-benchmark-demo"));
    assert_eq!(
        c.served,
        strings(&["inference provider vllm-inference (remote::vllm)", "1 model", "authentication github_token"])
    );
    assert_eq!(
        c.ignored,
        strings(&[
            "providers.agents[0] meta-reference (inline::meta-reference)",
            "providers.files[0] meta-reference-files (inline::localfs)",
            "providers.inference[1] sentence-transformers (inline::sentence-transformers)",
            "providers.safety[0] llama-guard (inline::llama-guard)",
            "providers.tool_runtime[0] tavily-search (remote::tavily-search)",
            "providers.tool_runtime[1] file_search-runtime (inline::file_search-runtime)",
            "api agents",
            "api files",
            "api safety",
            "api tool_runtime",
            "api vector_io",
            "registered_resources.shields",
            "registered_resources.tool_groups",
            "vector_stores",
        ]),
        "`files` is listed once although `apis` names it twice"
    );
    assert_eq!(l.config.server.port, 8323);
    assert!(l.config.telemetry.enabled);
    let Some(AuthProviderConfig::GithubToken(g)) = &l.config.server.auth.provider_config else { panic!("github") };
    assert_eq!(g.github_api_base_url, "https://api.github.com");
}

#[test]
fn typos_in_served_keys_still_fail() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("server:\n  port: 8321\n", "server:\n  prot: 8321\n", "server.prot", &["unknown field `prot`"]),
        ("    inference:\n      table_name: inference_store\n", "    inference:\n      tabel_name: inference_store\n",
            "storage.stores.inference.tabel_name", &["unknown field `tabel_name`"]),
        ("      base_url: ${env.VLLM_URL:=}\n", "      base_ulr: ${env.VLLM_URL:=}\n",
            "providers.inference[2].config.base_ulr", &["unknown field `base_ulr`"]),
        ("registered_resources:\n  models:\n  - model_id", "registered_resources:\n  models:\n  - modle_id",
            "registered_resources.models[0].modle_id", &["unknown field `modle_id`"]),
        ("storage:\n  backends:", "storag:\n  backends:", "storag", &["unknown field `storag`", "did you mean `storage`"]),
    ];
    let text = read("starter.yaml");
    for (from, to, path, words) in cases {
        assert!(text.contains(from), "the fixture changed: {from:?}");
        let p = problems(&text.replacen(from, to, 1), &STARTER_ENV);
        assert_problem(&p, path, words, path);
    }
}
