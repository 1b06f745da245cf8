//! The sidebar's list of a person's chats: pinned ones first, then by the day they were last
//! used (UTC days, as the server counts them). Every page's frame renders it, and the chat page
//! fetches it again (`GET /chat/list`) when a chat is started, titled or pinned, so the list is
//! drawn one way.

use super::UiError;
use crate::chat::store::Conversation;
use crate::http::guard::{Authed, ChatUser};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/chat/list", fragment);
}

/// The chats, grouped, with the search that found them and the one open.
#[derive(Default)]
pub struct ChatList {
    pub groups: Vec<(&'static str, Vec<Conversation>)>,
    pub search: String,
    pub current: Option<i64>,
}

const DAY: i64 = 86_400;

/// Which group a chat last used at `at` falls in, `now` being now.
fn group_of(c: &Conversation, now: i64) -> &'static str {
    if c.pinned_at.is_some() {
        return "Pinned";
    }
    match now.div_euclid(DAY) - c.updated_at.div_euclid(DAY) {
        ..=0 => "Today",
        1 => "Yesterday",
        2..=7 => "Previous 7 days",
        8..=30 => "Previous 30 days",
        _ => "Older",
    }
}

impl ChatList {
    /// Groups `conversations` (pinned first, then newest first, as the store lists them).
    pub fn new(conversations: Vec<Conversation>, search: String, current: Option<i64>, now: i64) -> ChatList {
        let mut groups: Vec<(&'static str, Vec<Conversation>)> = Vec::new();
        for c in conversations {
            let label = group_of(&c, now);
            match groups.last_mut() {
                Some((l, items)) if *l == label => items.push(c),
                _ => groups.push((label, vec![c])),
            }
        }
        ChatList { groups, search, current }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn is_current(&self, id: &i64) -> bool {
        self.current == Some(*id)
    }

    pub fn render(&self) -> Result<String, askama::Error> {
        Fragment { list: self }.render()
    }
}

#[derive(Template)]
#[template(path = "conversations.html")]
struct Fragment<'a> {
    list: &'a ChatList,
}

#[derive(Deserialize)]
struct ListQuery {
    c: Option<i64>,
    q: Option<String>,
}

/// The list alone, as the sidebar shows it.
async fn fragment(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, UiError> {
    let ListQuery { c, q } = query.into_inner();
    let err = super::ui_error(&state, "/chat");
    let conversations = state.chat().conversations(who.user.id, q.clone()).await.map_err(&err)?;
    let list = ChatList::new(conversations, q.unwrap_or_default(), c, state.clock.now());
    let html = list.render().map_err(|e| err(crate::error::AppError::internal(e)))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(id: i64, updated_at: i64, pinned_at: Option<i64>) -> Conversation {
        Conversation {
            id,
            user_id: 1,
            title: format!("c{id}"),
            model: "m".into(),
            system_prompt: String::new(),
            created_at: 0,
            updated_at,
            preset_id: None,
            pinned_at,
        }
    }

    #[test]
    fn chats_are_grouped_pinned_first_then_by_day() {
        let now = 100 * DAY + 3600;
        let list = ChatList::new(
            vec![
                conv(1, 10 * DAY, Some(now)),
                conv(2, now - 60, None),
                conv(3, 100 * DAY - 60, None),
                conv(4, 95 * DAY, None),
                conv(5, 80 * DAY, None),
                conv(6, 10 * DAY, None),
            ],
            String::new(),
            Some(2),
            now,
        );
        let labels: Vec<(&str, Vec<i64>)> =
            list.groups.iter().map(|(l, cs)| (*l, cs.iter().map(|c| c.id).collect())).collect();
        assert_eq!(
            labels,
            vec![
                ("Pinned", vec![1]),
                ("Today", vec![2]),
                ("Yesterday", vec![3]),
                ("Previous 7 days", vec![4]),
                ("Previous 30 days", vec![5]),
                ("Older", vec![6]),
            ]
        );
        let html = list.render().unwrap();
        assert!(html.contains("aria-current=\"page\">c2</a>"), "{html}");
    }
}
