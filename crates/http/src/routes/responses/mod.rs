//! `/v1/responses`: OpenAI's Responses API. `POST` translates the request to the chat completions
//! of the model's provider (`create.rs`); the stored responses are read, listed and deleted
//! through the responses store, whose every statement carries the access policy (`read.rs`).

mod create;
mod read;

use actix_web::web;
use ferrostack_responses::ResponseStore;

use crate::{ApiError, AppState};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/responses").route(web::post().to(create::create)).route(web::get().to(read::list)))
        .service(
            web::resource("/v1/responses/{response_id}")
                .route(web::get().to(read::get))
                .route(web::delete().to(read::delete)),
        )
        .service(web::resource("/v1/responses/{response_id}/input_items").route(web::get().to(read::input_items)));
}

/// The responses store, or 501 when `storage.stores.responses` is null.
fn store(state: &AppState) -> Result<&ResponseStore, ApiError> {
    state.responses.as_ref().ok_or_else(|| {
        ApiError::not_implemented("responses are not stored on this server: storage.stores.responses is null")
    })
}
