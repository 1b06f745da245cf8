//! The chat page: the conversation, its messages (each through the message partial), the
//! model and assistant picker, the collections it answers from. Sending and streaming go
//! through the JSON API (`http/chat.rs`) from the page's script.

use super::{Chrome, Page, UiError, render, ui_error};
use crate::catalog::ModelEntry;
use crate::chat::conversations::Opened;
use crate::chat::store::Conversation;
use crate::http::guard::ChatUser;
use crate::http::message::MessageView;
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use ayush_models::provider::Purpose;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/chat", chat_page).get("/chat/images/{id}", chat_image);
}

#[derive(Deserialize)]
struct ImageQuery {
    #[serde(default)]
    download: Option<String>,
}

/// An image drawn in one of the viewer's conversations: shown inline, or saved with
/// `?download=1`.
async fn chat_image(
    state: web::Data<AppState>,
    who: crate::http::guard::Authed<ChatUser>,
    path: web::Path<i64>,
    query: web::Query<ImageQuery>,
) -> crate::error::AppResult<HttpResponse> {
    let (uid, id) = (who.user.id, path.into_inner());
    let (content_type, bytes) = state.store.run(move |c| crate::chat::store::image(c, uid, id)).await?;
    // Stored images were checked to be one of these formats when they were drawn.
    let extension = ayush_models::provider::ImageFormat::sniff(&bytes).map_or("bin", |f| f.extension());
    let disposition = if query.download.is_some() { "attachment" } else { "inline" };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "private, max-age=86400"))
        .insert_header(("Content-Disposition", format!("{disposition}; filename=\"image-{id}.{extension}\"")))
        .body(bytes))
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    chrome: Chrome,
    conversation: Option<Conversation>,
    messages: Vec<MessageView>,
    models: Vec<ModelEntry>,
    /// Providers' image models the viewer may use: picked, a message is drawn, not answered.
    image_models: Vec<String>,
    selected_model: String,
    /// The speech model and voice answers are read aloud with, if the viewer may use one.
    read_aloud: Option<(String, String)>,
    /// The transcription model the microphone uses: the first the viewer may use, if any.
    dictation_model: Option<String>,
    /// The collections the viewer may read, and whether the chat answers from each.
    collections: Vec<(String, bool)>,
    /// Admins' assistants the viewer may chat with, and the one this chat follows.
    presets: Vec<crate::assistants::Preset>,
    selected_preset: Option<String>,
}

impl ChatPage {
    /// How many collections the chat answers from.
    fn answering(&self) -> usize {
        self.collections.iter().filter(|c| c.1).count()
    }
}

#[derive(Deserialize)]
struct ChatQuery {
    c: Option<i64>,
    q: Option<String>,
}

async fn chat_page(
    state: web::Data<AppState>,
    Page(who): Page<ChatUser>,
    query: web::Query<ChatQuery>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/chat");
    let ChatQuery { c, q } = query.into_inner();
    let uid = who.user.id;
    let readable: Vec<String> = state
        .store
        .run(move |c| crate::knowledge::collections::readable_names(c, uid))
        .await
        .map_err(&err)?;
    let presets = state.assistants.offered_to(uid).await.map_err(&err)?;
    let (conversation, messages, attached) = match c {
        Some(id) => {
            let opened = state.chat().conversation(uid, id).await.map_err(&err)?;
            let Opened { conversation, messages, mut citations, mut images } = opened;
            let views = messages
                .into_iter()
                .map(|m| {
                    let cited = citations.remove(&m.id).unwrap_or_default();
                    let drawn = images.remove(&m.id).unwrap_or_default();
                    MessageView::of(m, cited, drawn)
                })
                .collect();
            let attached = conversation.collections;
            let conv = conversation.conversation;
            (Some(conv), views, attached)
        }
        None => (None, Vec::new(), Vec::new()),
    };
    let collections = readable.into_iter().map(|n| (n.clone(), attached.contains(&n))).collect();
    let selected_preset = conversation
        .as_ref()
        .and_then(|c| c.preset_id)
        .and_then(|id| presets.iter().find(|p| p.id == id).map(|p| p.name.clone()));
    let catalog = state.catalog.clone();
    let mut models =
        state.store.run(move |c| crate::catalog::visible_to(&catalog, c, uid)).await.map_err(&err)?;
    let dictation_model = models
        .iter()
        .find(|m| m.manifest.as_ref().is_some_and(|m| m.is_transcription()))
        .map(|m| m.name.clone());
    let image_models =
        models.iter().filter(|m| m.is_remote(Purpose::Image)).map(|m| m.name.clone()).collect();
    let speech = &state.config.speech;
    let read_aloud = models
        .iter()
        .filter(|m| m.is_remote(Purpose::Speech))
        .find(|m| speech.read_aloud_model.is_empty() || m.name == speech.read_aloud_model)
        .map(|m| (m.name.clone(), speech.read_aloud_voice.clone()));
    models.retain(ModelEntry::chats);
    let selected_model = conversation
        .as_ref()
        .map(|c| c.model.clone())
        .or_else(|| state.catalog.default_name())
        .unwrap_or_default();
    let chrome =
        Chrome::for_user(&state, &who, "chat", None).with_chats(&state, uid, q, c).await.map_err(&err)?;
    let page = ChatPage {
        chrome,
        conversation,
        messages,
        models,
        image_models,
        selected_model,
        read_aloud,
        dictation_model,
        collections,
        presets,
        selected_preset,
    };
    Ok(render(&page, StatusCode::OK))
}
