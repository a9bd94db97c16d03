//! `/v1/conversations`: OpenAI's Conversations API. Handlers map requests to the conversations
//! store, whose every statement carries the access policy: another caller's conversation (and
//! its items) is simply not there (404).

mod conversation;
mod items;

use actix_web::web;
use ferrostack_conversations::ConversationStore;

use crate::{ApiError, AppState};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/conversations").route(web::post().to(conversation::create)))
        .service(
            web::resource("/v1/conversations/{conversation_id}")
                .route(web::get().to(conversation::get))
                .route(web::post().to(conversation::update))
                .route(web::delete().to(conversation::delete)),
        )
        .service(
            web::resource("/v1/conversations/{conversation_id}/items")
                .route(web::post().to(items::add))
                .route(web::get().to(items::list)),
        )
        .service(
            web::resource("/v1/conversations/{conversation_id}/items/{item_id}")
                .route(web::get().to(items::get))
                .route(web::delete().to(items::delete)),
        );
}

fn store(state: &AppState) -> Result<&ConversationStore, ApiError> {
    state
        .conversations
        .as_ref()
        .ok_or_else(|| ApiError::not_implemented("conversations are off: storage.stores.conversations is null"))
}
