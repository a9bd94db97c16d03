//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, built once from the same
//! limits the validators enforce (metadata pairs and lengths, item counts, list limits), so the
//! description and the server cannot drift apart silently. A test in `tests/http/openapi.rs`
//! reads the route registrations in this crate's sources and fails when one is not described.
//!
//! Written out rather than derived with a macro crate: the bodies are mostly OpenAI's loose JSON
//! objects, the error shape is one schema, and a generator would add a proc-macro dependency
//! for little more than what these few functions say.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use ferrostack_conversations::validate::{
    MAX_ITEMS_PER_CALL, MAX_METADATA_KEY_CHARS, MAX_METADATA_PAIRS, MAX_METADATA_VALUE_CHARS,
};
use serde_json::{Map, Value, json};

use crate::list::MAX_METADATA_FILTERS;

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The description served at `/openapi.json`.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// `GET /openapi.json`.
pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// One operation: its summary, parameters, body and 200 schema; every error status answers the
/// one error shape (`default`).
fn op(id: &str, summary: &str, params: Vec<Value>, body: Option<Value>, ok: Value) -> Value {
    let mut o = Map::new();
    o.insert("operationId".into(), json!(id));
    o.insert("summary".into(), json!(summary));
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Array(params));
    }
    if let Some(b) = body {
        o.insert("requestBody".into(), json_body(b));
    }
    o.insert(
        "responses".into(),
        json!({
            "200": {"description": "OK", "content": {"application/json": {"schema": ok}}},
            "default": {"$ref": "#/components/responses/Error"},
        }),
    );
    Value::Object(o)
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}})
}

fn query(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

/// `after`, `limit` (at least 1; at most `max` where a larger one is refused rather than
/// capped), `order`.
fn list_params(max: Option<u32>) -> Vec<Value> {
    let limit = match max {
        Some(max) => json!({"type": "integer", "minimum": 1, "maximum": max}),
        None => json!({"type": "integer", "minimum": 1}),
    };
    vec![
        query("after", json!({"type": "string"})),
        query("limit", limit),
        query("order", json!({"type": "string", "enum": ["asc", "desc"]})),
    ]
}

fn build() -> Value {
    let completion_id = || path_param("completion_id");
    let conversation_id = || {
        json!({"name": "conversation_id", "in": "path", "required": true,
               "schema": {"type": "string", "pattern": "^conv_[0-9a-f]{48}$"}})
    };
    let mut completions_list = list_params(None);
    completions_list.push(query("model", json!({"type": "string"})));
    completions_list.push(json!({
        "name": "metadata", "in": "query", "required": false, "style": "deepObject", "explode": true,
        "description": format!("`metadata[key]=value` filters, all of which must match (at most {MAX_METADATA_FILTERS})."),
        "schema": {"type": "object", "maxProperties": MAX_METADATA_FILTERS, "additionalProperties": {"type": "string"}},
    }));
    let mut messages_list = vec![completion_id()];
    messages_list.extend(list_params(None));
    let mut items_list = vec![conversation_id()];
    items_list.extend(list_params(Some(ferrostack_conversations::MAX_LIMIT)));
    items_list.push(query("include", json!({"type": "array", "items": {"type": "string"}})));
    let response_id = || path_param("response_id");
    let mut responses_list = list_params(Some(ferrostack_responses::MAX_LIMIT));
    responses_list.push(query("model", json!({"type": "string"})));
    let mut input_items_list = vec![response_id()];
    input_items_list.extend(list_params(Some(ferrostack_responses::MAX_LIMIT)));
    input_items_list.push(query("before", json!({"type": "string"})));
    input_items_list.push(query(
        "include",
        json!({"type": "array", "items": {"type": "string", "enum": ferrostack_responses::INCLUDE_VALUES}}),
    ));

    let paths = json!({
        "/v1/health": {"get": op("health", "Liveness", vec![], None, schema_ref("Status"))},
        "/v1/version": {"get": op("version", "The server's version", vec![], None, schema_ref("Version"))},
        "/readyz": {"get": op("readyz", "Readiness (503 when a storage backend does not answer)", vec![], None, schema_ref("Status"))},
        "/v1/readiness": {"get": op("readiness", "Readiness of each storage backend", vec![], None, schema_ref("Readiness"))},
        "/openapi.json": {"get": op("openapi", "This description", vec![], None, json!({"type": "object"}))},
        "/v1/chat/completions": {
            "post": op("createChatCompletion", "Create a chat completion (JSON, or SSE with `stream: true`)", vec![], Some(schema_ref("ChatCompletionCreate")), schema_ref("ChatCompletion")),
            "get": op("listChatCompletions", "List stored chat completions", completions_list, None, schema_ref("ChatCompletionList")),
        },
        "/v1/chat/completions/{completion_id}": {
            "get": op("getChatCompletion", "A stored chat completion", vec![completion_id()], None, schema_ref("ChatCompletion")),
            "post": op("updateChatCompletion", "Replace a stored chat completion's metadata", vec![completion_id()], Some(schema_ref("MetadataUpdate")), schema_ref("ChatCompletion")),
            "delete": op("deleteChatCompletion", "Delete a stored chat completion", vec![completion_id()], None, schema_ref("Deleted")),
        },
        "/v1/chat/completions/{completion_id}/messages": {
            "get": op("listChatCompletionMessages", "The input messages of a stored chat completion", messages_list, None, schema_ref("List")),
        },
        "/v1/models": {
            "get": op("listModels", "Models the caller may use", vec![], None, schema_ref("ModelList")),
            "post": op("registerModel", "Register a model", vec![], Some(schema_ref("ModelRegister")), schema_ref("Model")),
        },
        "/v1/models/{model_id}": {
            "get": op("getModel", "A model", vec![path_param("model_id")], None, schema_ref("Model")),
            "delete": op("deleteModel", "Unregister a model", vec![path_param("model_id")], None, schema_ref("Deleted")),
        },
        "/v1/conversations": {
            "post": op("createConversation", "Create a conversation", vec![], Some(schema_ref("ConversationCreate")), schema_ref("Conversation")),
        },
        "/v1/conversations/{conversation_id}": {
            "get": op("getConversation", "A conversation", vec![conversation_id()], None, schema_ref("Conversation")),
            "post": op("updateConversation", "Replace a conversation's metadata", vec![conversation_id()], Some(schema_ref("ConversationUpdate")), schema_ref("Conversation")),
            "delete": op("deleteConversation", "Delete a conversation and its items", vec![conversation_id()], None, schema_ref("Deleted")),
        },
        "/v1/conversations/{conversation_id}/items": {
            "post": op("addConversationItems", "Add items to a conversation", vec![conversation_id()], Some(schema_ref("ItemsAdd")), schema_ref("List")),
            "get": op("listConversationItems", "A conversation's items", items_list, None, schema_ref("List")),
        },
        "/v1/responses": {
            "post": op("createResponse", "Create a response (JSON, or SSE events with `stream: true`)", vec![], Some(schema_ref("ResponseCreate")), schema_ref("Response")),
            "get": op("listResponses", "List stored responses", responses_list, None, schema_ref("List")),
        },
        "/v1/responses/{response_id}": {
            "get": op("getResponse", "A stored response", vec![response_id()], None, schema_ref("Response")),
            "delete": op("deleteResponse", "Delete a stored response", vec![response_id()], None, schema_ref("Deleted")),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": op("listResponseInputItems", "The input items of a stored response", input_items_list, None, schema_ref("List")),
        },
        "/v1/conversations/{conversation_id}/items/{item_id}": {
            "get": op("getConversationItem", "One item of a conversation", vec![conversation_id(), path_param("item_id")], None, schema_ref("Item")),
            "delete": op("deleteConversationItem", "Delete one item of a conversation", vec![conversation_id(), path_param("item_id")], None, schema_ref("Deleted")),
        },
    });

    let metadata = json!({
        "type": "object",
        "maxProperties": MAX_METADATA_PAIRS,
        "propertyNames": {"maxLength": MAX_METADATA_KEY_CHARS},
        "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
    });
    let item = json!({"type": "object", "additionalProperties": true});
    let items = json!({"type": "array", "maxItems": MAX_ITEMS_PER_CALL, "items": item});
    let schemas = json!({
        "Error": {
            "type": "object", "required": ["error"], "additionalProperties": false,
            "properties": {"error": {
                "type": "object", "required": ["message", "type", "code", "param"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                },
            }},
        },
        "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
        "Version": {"type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}},
        "Readiness": {
            "type": "object", "required": ["status", "backends"],
            "properties": {"status": {"type": "string"}, "backends": {"type": "object"}},
        },
        "Metadata": metadata,
        "MetadataUpdate": {
            "type": "object", "additionalProperties": false,
            "properties": {"metadata": {"type": ["object", "null"], "additionalProperties": {"type": "string"}}},
        },
        "ChatCompletionCreate": {
            "type": "object", "required": ["model", "messages"], "additionalProperties": true,
            "properties": {
                "model": {"type": "string"},
                "messages": {"type": "array", "items": {"type": "object", "additionalProperties": true}},
                "stream": {"type": ["boolean", "null"]},
                "store": {"type": ["boolean", "null"]},
                "metadata": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
            },
        },
        "ChatCompletion": {
            "type": "object", "required": ["id"], "additionalProperties": true,
            "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "created": {"type": "integer"}},
        },
        "List": {
            "type": "object", "required": ["object", "data"], "additionalProperties": true,
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"type": "object"}},
                "first_id": {"type": ["string", "null"]},
                "last_id": {"type": ["string", "null"]},
                "has_more": {"type": "boolean"},
            },
        },
        "ChatCompletionList": {"$ref": "#/components/schemas/List"},
        "Model": {
            "type": "object", "required": ["id", "object"], "additionalProperties": true,
            "properties": {"id": {"type": "string"}, "object": {"const": "model"}},
        },
        "ModelList": {
            "type": "object", "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}},
        },
        "ModelRegister": {
            "type": "object", "required": ["model_id"], "additionalProperties": false,
            "properties": {
                "model_id": {"type": "string", "minLength": 1},
                "provider_id": {"type": ["string", "null"]},
                "provider_model_id": {"type": ["string", "null"]},
                "model_type": {"type": ["string", "null"]},
                "metadata": {"type": ["object", "null"]},
            },
        },
        "Conversation": {
            "type": "object", "required": ["id", "object", "created_at", "metadata"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "conversation"},
                "created_at": {"type": "integer"},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "ConversationCreate": {
            "type": "object", "additionalProperties": false,
            "properties": {"items": {"anyOf": [items, {"type": "null"}]}, "metadata": {"anyOf": [schema_ref("Metadata"), {"type": "null"}]}},
        },
        "ConversationUpdate": {
            "type": "object", "required": ["metadata"], "additionalProperties": false,
            "properties": {"metadata": schema_ref("Metadata")},
        },
        "ItemsAdd": {
            "type": "object", "required": ["items"], "additionalProperties": false,
            "properties": {"items": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS_PER_CALL, "items": item}},
        },
        "Item": {"type": "object", "required": ["id", "type"], "additionalProperties": true,
            "properties": {"id": {"type": "string"}, "type": {"type": "string"}}},
        "ResponseCreate": {
            "type": "object", "required": ["model"], "additionalProperties": true,
            "properties": {
                "model": {"type": "string"},
                "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object", "additionalProperties": true}}]},
                "instructions": {"type": ["string", "null"]},
                "previous_response_id": {"type": ["string", "null"]},
                "conversation": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]},
                "stream": {"type": ["boolean", "null"]},
                "store": {"type": ["boolean", "null"]},
                "metadata": {"anyOf": [schema_ref("Metadata"), {"type": "null"}]},
                "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
                "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "max_output_tokens": {"type": ["integer", "null"], "minimum": 1},
                "tools": {"type": ["array", "null"], "items": {"type": "object", "additionalProperties": true}},
            },
        },
        "Response": {
            "type": "object", "required": ["id", "object"], "additionalProperties": true,
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "response"},
                "created_at": {"type": "integer"},
                "status": {"type": "string"},
                "model": {"type": "string"},
                "output": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Deleted": {
            "type": "object", "required": ["id", "object", "deleted"],
            "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "deleted": {"type": "boolean"}},
        },
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ferrostack",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "ferrostack's OpenAI-compatible HTTP API. Every error has the one shape `Error`.",
        },
        "components": {
            "schemas": schemas,
            "responses": {"Error": {
                "description": "An error, in the one error shape (docs/api.md lists the codes).",
                "content": {"application/json": {"schema": schema_ref("Error")}},
            }},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    })
}
