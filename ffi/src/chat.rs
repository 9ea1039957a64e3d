//! Chat templates: a conversation rendered into the prompt text of the model's chat format.

use std::ffi::{CStr, c_char};

use eddy::chat::{BuiltinFormat, ChatError, ChatTemplate, Conversation};

use crate::boundary::eddy_status::{self, *};
use crate::boundary::{Failure, FfiResult, arg_buf, arg_mut, arg_ref, arg_slice, copy_out, guard};
use crate::model::eddy_model;

/// One message of a conversation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct eddy_chat_message {
    /// "system", "user", "assistant" or "tool": NUL-terminated UTF-8.
    pub role: *const c_char,
    /// The message's text: NUL-terminated UTF-8.
    pub content: *const c_char,
}

impl From<ChatError> for Failure {
    fn from(e: ChatError) -> Failure {
        let status = match e {
            ChatError::Conversation(_) => EDDY_STATUS_INVALID_ARGUMENT,
            ChatError::NoTemplate | ChatError::Template(_) => EDDY_STATUS_INVALID_TEMPLATE,
        };
        Failure::new(status, e.to_string())
    }
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that stays unchanged during `'a`.
unsafe fn c_str<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|e| {
        Failure::new(
            EDDY_STATUS_INVALID_UTF8,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

/// Renders a conversation into prompt text with a chat template, NUL-terminated.
///
/// chat_template is NULL for the model's own template (tokenizer.chat_template; a file without
/// one gets llama.cpp's built-in format for its vocabulary: Gemma's turns or ChatML), the name
/// of a built-in format ("gemma", "chatml"), or the source of a Jinja template. The template is
/// rendered the way Hugging Face transformers renders it, with messages (n_messages of them;
/// messages may be NULL only when n_messages is 0), tools (tools_json: NULL or a JSON array of
/// tool schemas) and add_generation_prompt (true opens the assistant's turn).
/// Rendering is bounded (an instruction budget, a recursion limit, 16 MiB of output).
///
/// The text carries BOS only if the template writes it: tokenize it with add_special true at
/// the start of a context (eddy_tokenize adds BOS where the model wants one) and parse_special
/// true. To continue a conversation without re-processing it, render the whole conversation
/// each turn and decode only the text after what the context already holds (see
/// examples/c/chat.c).
///
/// On EDDY_STATUS_OK, *out_len receives the text's length without the NUL; on
/// EDDY_STATUS_BUFFER_TOO_SMALL, the buffer size needed with the NUL (buf may be NULL when
/// buf_len is 0). Other returns: EDDY_STATUS_NULL_POINTER, EDDY_STATUS_INVALID_UTF8,
/// EDDY_STATUS_INVALID_ARGUMENT (tools_json is not a JSON array), EDDY_STATUS_INVALID_TEMPLATE.
///
/// # Safety
/// model is NULL or a live model; chat_template and tools_json are NULL or NUL-terminated;
/// messages is NULL or holds n_messages messages whose strings are NULL or NUL-terminated;
/// buf is NULL or holds buf_len writable bytes; out_len is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_chat_apply_template(
    model: *const eddy_model,
    chat_template: *const c_char,
    messages: *const eddy_chat_message,
    n_messages: usize,
    tools_json: *const c_char,
    add_generation_prompt: bool,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: the caller promises messages holds n_messages messages (or is NULL).
        let msgs = unsafe { arg_slice(messages, n_messages, "messages") }?;
        // SAFETY: the caller promises buf holds buf_len writable bytes (or is NULL).
        let buf = unsafe { arg_buf(buf.cast::<u8>(), buf_len, "buf") }?;
        // SAFETY: the caller promises out_len is NULL or writable.
        let out = unsafe { arg_mut(out_len, "out_len") }?;
        let tmpl = if chat_template.is_null() {
            ChatTemplate::from_model(&m.model)?
        } else {
            // SAFETY: non-NULL; NUL-terminated by the caller's contract.
            let src = unsafe { c_str(chat_template, "chat_template") }?;
            match BuiltinFormat::from_name(src) {
                Some(f) => ChatTemplate::builtin(&m.model, f),
                None => ChatTemplate::from_source(&m.model, src)?,
            }
        };
        let mut conv = Conversation::new();
        conv.add_generation_prompt = add_generation_prompt;
        for (i, msg) in msgs.iter().enumerate() {
            // SAFETY: the caller promises each string is NULL or NUL-terminated.
            let role = unsafe { c_str(msg.role, &format!("messages[{i}].role")) }?;
            // SAFETY: as above.
            let content = unsafe { c_str(msg.content, &format!("messages[{i}].content")) }?;
            conv.push(role, content);
        }
        if !tools_json.is_null() {
            // SAFETY: non-NULL; NUL-terminated by the caller's contract.
            conv.set_tools_json(unsafe { c_str(tools_json, "tools_json") }?)?;
        }
        let text = tmpl.render(&conv)?;
        copy_out(text.as_bytes(), buf, out, true, "text")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_errors_have_their_own_status() {
        let f = Failure::from(ChatError::Template("x".into()));
        assert_eq!(f.status, EDDY_STATUS_INVALID_TEMPLATE);
        let f = Failure::from(ChatError::Conversation("x".into()));
        assert_eq!(f.status, EDDY_STATUS_INVALID_ARGUMENT);
    }
}
