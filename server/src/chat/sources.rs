//! Answers from company documents. A conversation names the collections it answers from; at
//! each turn the user's message is searched in those of them the user may read now (the same
//! filtered query as the search page), the best passages go into the prompt numbered within a
//! budget, and the reply keeps them as its citations. A citation is shown again only to
//! someone who may still read its collection.

use crate::error::{AppError, AppResult};
use crate::knowledge::collections::{self, Caller};
use crate::knowledge::{self, SharedKnowledge};
use crate::store::schema::{collections as collections_t, conversation_collections, message_citations};
use crate::store::{Conn, Store};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// At most this many passages go into a prompt…
pub const MAX_SOURCES: usize = 6;
/// A chat's sources may take two neighbouring passages of one document (an answer that runs
/// over a passage boundary), never more: the rest go to other documents.
const PER_DOCUMENT: usize = 2;
/// …and at most this much of their text (about 1,500 tokens), or a third of a smaller model's
/// context window (see [`budget`]).
pub const MAX_SOURCE_CHARS: usize = 6000;

/// The characters of passages a prompt may hold for a model with this context window (in
/// tokens; unknown for remote models): a third of it at about four characters a token, leaving
/// the rest to the conversation and the answer.
pub fn budget(context_tokens: Option<usize>) -> usize {
    context_tokens.map_or(MAX_SOURCE_CHARS, |t| (t * 4 / 3).min(MAX_SOURCE_CHARS))
}
/// Collections one conversation may answer from.
pub const MAX_COLLECTIONS: usize = 20;

/// A passage given to a reply, as the reply keeps it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Citation {
    pub number: i64,
    pub collection: String,
    #[serde(skip)]
    pub collection_id: i64,
    pub document_id: i64,
    pub chunk_id: i64,
    pub title: String,
    pub source: String,
    pub heading: String,
    pub page: Option<i64>,
    pub text: String,
    /// Where the passage is, for people: "Handbook › Leave, page 4".
    pub place: String,
}

/// "Title › heading, page N", without saying the title twice when the heading path starts
/// with it (as a document's first heading usually is its title).
fn place(title: &str, heading: &str, page: Option<i64>) -> String {
    let mut s = if heading.is_empty() {
        title.to_string()
    } else if heading == title || heading.starts_with(&format!("{title} › ")) {
        heading.to_string()
    } else {
        format!("{title} › {heading}")
    };
    if let Some(p) = page {
        s.push_str(&format!(", page {p}"));
    }
    s
}

/// The names of the collections a conversation answers from.
pub fn attached(conn: &mut Conn, conversation_id: i64) -> AppResult<Vec<(i64, String)>> {
    Ok(conn.load(
        conversation_collections::table
            .inner_join(collections_t::table)
            .filter(conversation_collections::conversation_id.eq(conversation_id))
            .select((collections_t::id, collections_t::name))
            .order(collections_t::name.asc()),
    )?)
}

/// The personal collection that keeps the files attached to one chat: its owner may also tick
/// it in other chats, search it, or remove it, like any personal collection.
pub fn files_collection(conversation_id: i64) -> String {
    format!("Chat {conversation_id} files")
}

/// Makes sure the chat's files collection exists (owned by `caller`) and that the chat answers
/// from it; its name.
pub fn ensure_files_collection(
    conn: &mut Conn,
    now: i64,
    actor: &crate::audit::Actor,
    caller: Caller,
    conversation_id: i64,
) -> AppResult<String> {
    let name = files_collection(conversation_id);
    conn.transaction(|conn| {
        match collections::row(conn, &name) {
            Ok(row) if row.owner_id.is_some() && row.owner_id == caller.user_id => {}
            Ok(_) => {
                return Err(AppError::conflict(format!(
                    "a collection named {name:?} belongs to someone else; rename or remove it to attach files here"
                )));
            }
            Err(_) => {
                let new = collections::NewCollection {
                    name: name.clone(),
                    description: format!("Files attached to chat {conversation_id}"),
                    personal: true,
                    ..Default::default()
                };
                collections::create(conn, now, actor, caller, new)?;
            }
        }
        let mut names: Vec<String> = attached(conn, conversation_id)?.into_iter().map(|(_, n)| n).collect();
        if !names.contains(&name) {
            names.push(name.clone());
            attach(conn, caller, conversation_id, &names)?;
        }
        Ok(name)
    })
}

/// Makes the conversation answer from exactly these collections, each of which the user must
/// be able to read.
pub fn attach(conn: &mut Conn, caller: Caller, conversation_id: i64, names: &[String]) -> AppResult<()> {
    if names.len() > MAX_COLLECTIONS {
        return Err(AppError::validation(format!(
            "a chat answers from at most {MAX_COLLECTIONS} collections"
        )));
    }
    conn.transaction(|conn| {
        let mut ids = Vec::new();
        for name in names {
            ids.push(collections::readable(conn, caller, name)?.id);
        }
        ids.sort_unstable();
        ids.dedup();
        conn.execute(diesel::delete(
            conversation_collections::table
                .filter(conversation_collections::conversation_id.eq(conversation_id)),
        ))?;
        for id in ids {
            conn.execute(diesel::insert_into(conversation_collections::table).values((
                conversation_collections::conversation_id.eq(conversation_id),
                conversation_collections::collection_id.eq(id),
            )))?;
        }
        Ok(())
    })
}

/// The passages for `question` from the conversation's collections that the user may read
/// now, numbered from 1, at most [`MAX_SOURCES`] and `budget` characters.
pub async fn retrieve(
    store: &Store,
    knowledge: &SharedKnowledge,
    caller: Caller,
    conversation_id: i64,
    question: &str,
    budget: usize,
) -> AppResult<Vec<Citation>> {
    let Some(user_id) = caller.user_id else { return Ok(Vec::new()) };
    let names: Vec<String> = store
        .run(move |c| {
            let readable = collections::readable_ids(c, user_id)?;
            let mut names: Vec<String> = attached(c, conversation_id)?
                .into_iter()
                .filter(|(id, _)| readable.contains(id))
                .map(|(_, name)| name)
                .collect();
            // An admin's preset adds its collections, read with this user's rights all the same.
            if let Some(preset) = crate::assistants::of_conversation(c, conversation_id)? {
                let ids = crate::assistants::collection_ids(c, preset.id)?;
                let theirs = collections::names(c, &ids)?;
                names.extend(theirs.into_iter().filter(|(id, _)| readable.contains(id)).map(|(_, n)| n));
            }
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await?;
    if names.is_empty() || question.trim().is_empty() {
        return Ok(Vec::new());
    }
    // A long message is searched by its start: the index reads at most 1000 characters.
    let question: String = question.chars().take(1000).collect();
    let hits = knowledge::search(store, knowledge, caller, &question, names, MAX_SOURCES, Some(PER_DOCUMENT))
        .await?;
    let mut out = Vec::new();
    let mut used = 0;
    for hit in hits {
        let f = hit.found;
        if used + f.text.len() > budget {
            continue; // a shorter one further down may still fit
        }
        used += f.text.len();
        out.push(Citation {
            place: place(&f.title, &f.heading, f.page.map(i64::from)),
            number: out.len() as i64 + 1,
            collection: hit.collection,
            collection_id: f.collection_id,
            document_id: f.document_id,
            chunk_id: f.chunk_id,
            title: f.title,
            source: f.source,
            heading: f.heading,
            page: f.page.map(i64::from),
            text: f.text,
        });
    }
    Ok(out)
}

/// What the system prompt says about the passages.
pub fn instructions(sources: &[Citation]) -> String {
    let mut s = String::from(
        "Answer from the numbered sources below when they hold the answer, and cite each source you use \
         by its number in square brackets, like [1]. If they do not hold the answer, say so, then answer \
         as best you can without them.\n",
    );
    for c in sources {
        s.push_str(&format!("\n[{}] {} ({})\n{}\n", c.number, c.place, c.source, c.text));
    }
    s
}

/// Keeps a reply's sources with it (inside the reply's transaction).
pub fn keep(conn: &mut Conn, message_id: i64, sources: &[Citation]) -> AppResult<()> {
    let rows: Vec<_> = sources
        .iter()
        .map(|c| {
            (
                message_citations::message_id.eq(message_id),
                message_citations::number.eq(c.number),
                message_citations::collection_id.eq(c.collection_id),
                message_citations::document_id.eq(c.document_id),
                message_citations::chunk_id.eq(c.chunk_id),
                message_citations::title.eq(&c.title),
                message_citations::source.eq(&c.source),
                message_citations::heading.eq(&c.heading),
                message_citations::page.eq(c.page),
                message_citations::body.eq(&c.text),
            )
        })
        .collect();
    if !rows.is_empty() {
        conn.execute(diesel::insert_into(message_citations::table).values(&rows))?;
    }
    Ok(())
}

/// The citations of these messages that `user_id` may still read, by message.
pub fn of_messages(
    conn: &mut Conn,
    user_id: i64,
    message_ids: &[i64],
) -> AppResult<HashMap<i64, Vec<Citation>>> {
    type Row = (i64, i64, i64, i64, i64, String, String, String, Option<i64>, String);
    let rows: Vec<Row> = conn.load(
        message_citations::table
            .filter(message_citations::message_id.eq_any(message_ids))
            .order((message_citations::message_id.asc(), message_citations::number.asc()))
            .select((
                message_citations::message_id,
                message_citations::number,
                message_citations::collection_id,
                message_citations::document_id,
                message_citations::chunk_id,
                message_citations::title,
                message_citations::source,
                message_citations::heading,
                message_citations::page,
                message_citations::body,
            )),
    )?;
    let readable = collections::readable_ids(conn, user_id)?;
    let names: BTreeMap<i64, String> = collections::names(conn, &readable)?;
    let mut out: HashMap<i64, Vec<Citation>> = HashMap::new();
    for (message_id, number, collection_id, document_id, chunk_id, title, source, heading, page, text) in rows
    {
        let Some(collection) = names.get(&collection_id) else { continue };
        out.entry(message_id).or_default().push(Citation {
            place: place(&title, &heading, page),
            number,
            collection: collection.clone(),
            collection_id,
            document_id,
            chunk_id,
            title,
            source,
            heading,
            page,
            text,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_numbers_its_sources_with_where_they_are() {
        let c = Citation {
            number: 1,
            collection: "HR".into(),
            collection_id: 1,
            document_id: 2,
            chunk_id: 3,
            title: "Handbook".into(),
            source: "hb.pdf".into(),
            heading: "Leave".into(),
            page: Some(4),
            text: "Twenty days.".into(),
            place: place("Handbook", "Leave", Some(4)),
        };
        let s = instructions(&[c]);
        assert!(s.contains("[1] Handbook › Leave, page 4 (hb.pdf)\nTwenty days.\n"), "{s}");
        assert!(s.starts_with("Answer from the numbered sources"));
        assert_eq!(place("Leave", "Leave › Parental", None), "Leave › Parental");
        assert_eq!(place("Leave", "", Some(2)), "Leave, page 2");
        assert_eq!((budget(None), budget(Some(32768)), budget(Some(2048))), (6000, 6000, 2730));
    }
}
