//! The console's status page (`/admin/status`): `crate::status` as admins read it.

use crate::http::guard::AdminOnly;
use crate::http::routes::Routes;
use crate::http::ui::{Chrome, Page, UiError, render_uncached};
use crate::state::AppState;
use crate::status::Status;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

pub fn routes(r: &mut Routes) {
    r.get("/admin/status", page);
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    chrome: Chrome,
    status: Status,
}

impl StatusPage {
    fn when(&self, at: &i64) -> String {
        crate::clock::format_time(*at)
    }

    fn bytes(&self, n: &u64) -> String {
        super::human_bytes(*n)
    }

    fn uptime(&self) -> String {
        crate::usage::quotas::duration(self.status.uptime_secs)
    }

    /// Changes of the database the index has still to take in.
    fn index_behind(&self) -> Option<i64> {
        self.status.index.as_ref().map(|r| (r.feed_seq - r.index.applied_seq).max(0))
    }

    /// Passages still to be embedded, where an embedding model is configured.
    fn embeddings_behind(&self) -> Option<i64> {
        let e = &self.status.index.as_ref()?.embedding;
        Some((e.passages? - e.embedded?).max(0))
    }
}

async fn page(state: web::Data<AppState>, Page(who): Page<AdminOnly>) -> Result<HttpResponse, UiError> {
    let status = crate::status::gather(&state).await;
    let page = StatusPage { chrome: Chrome::for_user(&state, &who, "status", None), status };
    Ok(render_uncached(&page, StatusCode::OK))
}
