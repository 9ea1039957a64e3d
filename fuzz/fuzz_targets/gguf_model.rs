//! Arbitrary bytes as a GGUF file: parse, walk every metadata value and tensor, load the model
//! and, if it loads, tokenize, decode a few tokens in a small context and sample.
//!
//! Every input must be refused with an error or run; a panic, an out-of-memory kill or a
//! timeout is a bug. Seeds: tiny synthetic models of each architecture and the headers of the
//! real models (`make-seeds`).
#![no_main]

use eddy::Model;
use eddy::gguf::Gguf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = Gguf::from_vec(data.to_vec()) else {
        return;
    };
    eddy_fuzz::walk_gguf(&gguf);
    let Ok(model) = Model::from_gguf(gguf) else {
        return;
    };
    eddy_fuzz::exercise_model(&model);
});
