//! `/v1/chat/completions`: create (proxy + store) and the stored-completions API.

mod create;
mod read;
mod store;

use actix_web::web;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/chat/completions").route(web::post().to(create::create)).route(web::get().to(read::list)),
    )
    .service(
        web::resource("/v1/chat/completions/{completion_id}")
            .route(web::get().to(read::get))
            .route(web::post().to(read::update))
            .route(web::delete().to(read::delete)),
    )
    .service(web::resource("/v1/chat/completions/{completion_id}/messages").route(web::get().to(read::messages)));
}
