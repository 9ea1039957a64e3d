//! Arbitrary chat templates rendering arbitrary conversations.
//!
//! Input: the template source, a NUL byte, then a conversation file (`{"messages": …, "tools":
//! …, "add_generation_prompt": …}` or an array of messages); without a NUL, or when the rest is
//! not a conversation, a fixed three-message conversation with tools is rendered. Templates are
//! compiled against a tiny model (its BOS/EOS texts), through the Rust API and the C call
//! `eddy_chat_apply_template`. Must render or fail with a typed error, within the renderer's
//! bounds (instruction budget, recursion limit, 16 MiB of output); a panic, a hang (libFuzzer's
//! timeout) or an out-of-memory kill is a bug. Seeds: the real models' templates and
//! conversations from the golden file (`make-seeds`).
#![no_main]

use std::ffi::CString;

use eddy::chat::{ChatTemplate, Conversation, MAX_RENDERED_BYTES};
use eddy_ffi::chat::{eddy_chat_apply_template, eddy_chat_message};
use eddy_ffi::eddy_status::*;
use libfuzzer_sys::fuzz_target;

const DEFAULT_CONVERSATION: &str = r#"{"messages": [
  {"role": "system", "content": "Be brief."},
  {"role": "user", "content": "What is 17 + 25?"},
  {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 17, "b": 25}}}]},
  {"role": "tool", "content": "42"}],
 "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]}"#;

fuzz_target!(|data: &[u8]| {
    let (src, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    let m = eddy_fuzz::tiny_models();
    let conv = std::str::from_utf8(rest)
        .ok()
        .and_then(|t| Conversation::from_json(t).ok())
        .unwrap_or_else(|| Conversation::from_json(DEFAULT_CONVERSATION).unwrap());
    if let Ok(t) = ChatTemplate::from_source(&m.model, src)
        && let Ok(text) = t.render(&conv)
    {
        assert!(text.len() <= MAX_RENDERED_BYTES);
    }

    // The C call with the same template and the conversation's role/content pairs.
    let Ok(c_src) = CString::new(src) else { return };
    let pairs: Vec<(CString, CString)> = (0..conv.len())
        .filter_map(|i| conv.message(i))
        .filter_map(|(r, c)| Some((CString::new(r).ok()?, CString::new(c).ok()?)))
        .collect();
    let msgs: Vec<eddy_chat_message> = pairs
        .iter()
        .map(|(r, c)| eddy_chat_message {
            role: r.as_ptr(),
            content: c.as_ptr(),
        })
        .collect();
    let mut need = 0usize;
    // SAFETY: valid strings and messages; a size query (buf NULL, length 0).
    let st = unsafe {
        eddy_chat_apply_template(
            m.c_model,
            c_src.as_ptr(),
            msgs.as_ptr(),
            msgs.len(),
            std::ptr::null(),
            true,
            std::ptr::null_mut(),
            0,
            &mut need,
        )
    };
    assert!(
        matches!(
            st,
            EDDY_STATUS_BUFFER_TOO_SMALL | EDDY_STATUS_INVALID_TEMPLATE | EDDY_STATUS_INVALID_UTF8
        ),
        "eddy_chat_apply_template returned {st:?}"
    );
});
