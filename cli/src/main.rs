//! `eddy`: the command-line face of the Eddy runtime.
//!
//! Subcommands: `inspect` (what a GGUF file holds), `tokenize`, `generate`, `chat`, `logits`,
//! `perplexity`, `bench`, `quantize`.
#![forbid(unsafe_code)]

mod args;
mod bench;
mod chat;
mod inspect;
mod perplexity;
mod progress;
mod quantize;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "eddy",
    version,
    about = "Run quantized GGUF language models on small CPUs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a GGUF file's metadata and tensor table.
    Inspect(inspect::InspectArgs),
    /// Print the token ids of a text as a JSON array.
    Tokenize(run::TokenizeArgs),
    /// Stream a continuation of a prompt.
    Generate(run::GenerateArgs),
    /// Talk to an instruct model in its own chat format; the history stays in the KV arena.
    Chat(chat::ChatArgs),
    /// Evaluate a sequence in one pass and print the top logits of every position as JSON.
    Logits(run::LogitsArgs),
    /// Perplexity of a text: llama.cpp chunks (the default, 512 tokens), a stream through the
    /// arena, or re-computation.
    Perplexity(perplexity::PerplexityArgs),
    /// Prompt-processing and generation speed (best of several repetitions).
    Bench(bench::BenchArgs),
    /// Write a model in another quantization type, byte for byte as llama.cpp's llama-quantize.
    Quantize(quantize::QuantizeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Tokenize(a) => run::tokenize(a),
        Command::Generate(a) => run::generate(a),
        Command::Chat(a) => chat::run(a),
        Command::Logits(a) => run::logits(a),
        Command::Perplexity(a) => perplexity::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Quantize(a) => quantize::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`eddy inspect m.gguf | head`) is the reader's choice, not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eddy: error: {e}");
            ExitCode::FAILURE
        }
    }
}
