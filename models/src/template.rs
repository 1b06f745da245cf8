//! Chat templates: the model's own Jinja `tokenizer.chat_template`, rendered by minijinja in a
//! sandbox (no loader, so no file or network access; fuel bounds the work and so the output),
//! with the helpers Hugging Face templates use; or a built-in format for the model family when
//! the file has none.

use crate::ModelError;
use minijinja::{Environment, Error as JinjaError, ErrorKind, context};
use serde::Serialize;

/// Instructions a render may take; generous for long chats, fatal for a runaway template.
const FUEL: u64 = 5_000_000;
/// A rendered prompt longer than this is refused (it could not fit any context window anyway).
const MAX_PROMPT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.to_string(), content: content.to_string() }
    }
}

/// The turn formats used when a file carries no template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `<|im_start|>role\n…<|im_end|>\n` (Qwen, SmolLM and many others).
    ChatMl,
    /// `<start_of_turn>user\n…<end_of_turn>\n`, no system role, the assistant is `model`.
    Gemma,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`.
    Llama3,
    /// `<|user|>\n…<|end|>\n`.
    Phi3,
}

#[derive(Debug)]
enum Source {
    Jinja(String),
    Builtin(Family),
}

#[derive(Debug)]
pub struct ChatTemplate {
    source: Source,
    bos_token: String,
    eos_token: String,
}

fn raise_exception(msg: String) -> Result<String, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    /// The file's template, checked now so a broken one is refused at import, not at chat time.
    pub fn jinja(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, ModelError> {
        let t = ChatTemplate {
            source: Source::Jinja(source.to_string()),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        };
        t.environment()?;
        Ok(t)
    }

    pub fn builtin(family: Family, bos_token: &str, eos_token: &str) -> ChatTemplate {
        ChatTemplate {
            source: Source::Builtin(family),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        }
    }

    pub fn is_builtin(&self) -> bool {
        matches!(self.source, Source::Builtin(_))
    }

    fn environment(&self) -> Result<Environment<'static>, ModelError> {
        let Source::Jinja(source) = &self.source else {
            return Err(ModelError::Template("no Jinja source".into()));
        };
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        // Templates stamp the date into system prompts; the date of the box is what they want.
        env.add_function("strftime_now", |_fmt: String| -> String { String::new() });
        env.add_template_owned("chat", source.clone())
            .map_err(|e| ModelError::Template(format!("the chat template does not parse: {e}")))?;
        Ok(env)
    }

    /// The prompt for `messages`, ending with the assistant's turn opened when
    /// `add_generation_prompt` is set.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ModelError> {
        let out = match &self.source {
            Source::Builtin(family) => builtin(*family, &self.bos_token, messages, add_generation_prompt),
            Source::Jinja(_) => {
                let env = self.environment()?;
                let tmpl = env.get_template("chat").map_err(|e| ModelError::Template(e.to_string()))?;
                tmpl.render(context! {
                    messages => minijinja::Value::from(minijinja::value::Serde(messages)),
                    add_generation_prompt => add_generation_prompt,
                    bos_token => self.bos_token.as_str(),
                    eos_token => self.eos_token.as_str(),
                })
                .map_err(|e| ModelError::Template(format!("rendering the chat template: {e}")))?
            }
        };
        if out.len() > MAX_PROMPT_BYTES {
            return Err(ModelError::Template("the rendered prompt is too large".into()));
        }
        Ok(out)
    }

    /// The prompt for `messages` when the last is an assistant's answer to be continued: the
    /// chat rendered whole with a marker in place of that answer, cut at the marker, and the
    /// answer's text put there, so the model writes on from its last word instead of starting
    /// a new turn (what Hugging Face calls `continue_final_message`). The text is trimmed, as
    /// templates often trim a message.
    pub fn render_continuing(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        const MARKER: &str = "\u{E000}ayush-continue\u{E000}";
        let Some((last, earlier)) = messages.split_last() else {
            return Err(ModelError::BadRequest("there is no answer to continue".into()));
        };
        let text = last.content.trim();
        if text.is_empty() {
            return Err(ModelError::BadRequest("there is no answer to continue".into()));
        }
        let mut marked = earlier.to_vec();
        marked.push(ChatMessage::new(&last.role, MARKER));
        let whole = self.render(&marked, false)?;
        let at = whole.find(MARKER).ok_or_else(|| {
            ModelError::Template(
                "this model's chat template changes an answer's text, so it cannot continue one".into(),
            )
        })?;
        Ok(format!("{}{text}", &whole[..at]))
    }
}

fn builtin(family: Family, bos: &str, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    match family {
        Family::ChatMl => {
            for m in messages {
                out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
            }
            if add_generation_prompt {
                out.push_str("<|im_start|>assistant\n");
            }
        }
        Family::Gemma => {
            out.push_str(bos);
            // No system role: the system prompt opens the first user turn.
            let mut system = String::new();
            for m in messages {
                match m.role.as_str() {
                    "system" => {
                        system.push_str(&m.content);
                        system.push_str("\n\n");
                    }
                    role => {
                        let role = if role == "assistant" { "model" } else { "user" };
                        out.push_str(&format!(
                            "<start_of_turn>{role}\n{}{}<end_of_turn>\n",
                            std::mem::take(&mut system),
                            m.content
                        ));
                    }
                }
            }
            if add_generation_prompt {
                out.push_str("<start_of_turn>model\n");
            }
        }
        Family::Llama3 => {
            out.push_str(bos);
            for m in messages {
                out.push_str(&format!(
                    "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                    m.role, m.content
                ));
            }
            if add_generation_prompt {
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
        }
        Family::Phi3 => {
            for m in messages {
                out.push_str(&format!("<|{}|>\n{}<|end|>\n", m.role, m.content));
            }
            if add_generation_prompt {
                out.push_str("<|assistant|>\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello!"),
            ChatMessage::new("user", "Capital of France?"),
        ]
    }

    #[test]
    fn gemma_turns_fold_the_system_prompt_into_the_first_user_turn() {
        let t = ChatTemplate::builtin(Family::Gemma, "<bos>", "<eos>");
        assert_eq!(
            t.render(&chat(), true).unwrap(),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n\
             <start_of_turn>user\nCapital of France?<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn a_last_answer_is_left_open_to_be_continued() {
        let mut messages = chat();
        messages.push(ChatMessage::new("assistant", "The capital of France is \n"));
        let chatml = ChatTemplate::builtin(Family::ChatMl, "", "");
        let open = chatml.render_continuing(&messages).unwrap();
        assert!(
            open.ends_with("Capital of France?<|im_end|>\n<|im_start|>assistant\nThe capital of France is"),
            "{open}"
        );
        let llama = ChatTemplate::builtin(Family::Llama3, "<s>", "");
        assert!(
            llama
                .render_continuing(&messages)
                .unwrap()
                .ends_with("<|end_header_id|>\n\nThe capital of France is")
        );
        // A template that does not show the answer as written cannot continue it.
        let upper = ChatTemplate::jinja("{% for m in messages %}{{ m.content.upper() }}{% endfor %}", "", "")
            .unwrap();
        assert!(upper.render_continuing(&messages).unwrap_err().to_string().contains("cannot continue one"));
        messages.last_mut().unwrap().content = "  ".into();
        assert!(chatml.render_continuing(&messages).is_err());
    }

    #[test]
    fn jinja_templates_render_with_hf_helpers() {
        let src = "{% for m in messages %}{% if m.role not in ['system','user','assistant'] %}{{ raise_exception('bad role') }}{% endif %}\
                   <{{ m.role }}>{{ m.content.strip() }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
        let t = ChatTemplate::jinja(src, "", "").unwrap();
        assert_eq!(t.render(&[ChatMessage::new("user", "  hi  ")], true).unwrap(), "<user>hi<assistant>");
        let err = t.render(&[ChatMessage::new("robot", "x")], false).unwrap_err().to_string();
        assert!(err.contains("bad role"), "{err}");
    }

    #[test]
    fn broken_and_runaway_templates_are_refused() {
        assert!(ChatTemplate::jinja("{% for %}", "", "").unwrap_err().to_string().contains("does not parse"));
        let forever = ChatTemplate::jinja(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert!(forever.render(&[], false).is_err());
        let no_files = ChatTemplate::jinja("{% include '/etc/passwd' %}", "", "").unwrap();
        assert!(no_files.render(&[], false).is_err());
    }
}
