//! Parsers and checks shared by the subcommands' arguments.
//!
//! Every numeric flag goes through one of these, so that no value, however large, small,
//! negative or absurd, reaches an allocation or an assertion: an out-of-range value is refused
//! by clap with one line naming the flag and the allowed range (exit status 2). Checks that
//! need the model (a window no larger than its trained context) are in [`within_context`].

use std::io::Read as _;
use std::path::Path;

/// Most threads a context's pool takes (the runtime's own limit).
pub const MAX_THREADS: u64 = 256;
/// Most attention sinks.
pub const MAX_SINKS: u64 = 1024;
/// Most recent tokens the repetition penalties look at.
pub const MAX_REPEAT_LAST_N: i64 = 65536;

/// An integer in `lo..=hi`.
pub fn int_in(lo: u64, hi: u64) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    move |s: &str| {
        let range = if hi == u64::MAX {
            format!("allowed {lo} or more")
        } else {
            format!("allowed {lo}..={hi}")
        };
        match s.trim().parse::<i128>() {
            Ok(v) if (lo as i128..=hi as i128).contains(&v) => {
                usize::try_from(v).map_err(|_| range)
            }
            Ok(_) => Err(format!("out of range; {range}")),
            // Past i128, a long run of digits is still a number, just a huge one.
            Err(_)
                if s.trim()
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && !s.trim().trim_start_matches('-').is_empty() =>
            {
                Err(format!("out of range; {range}"))
            }
            Err(_) => Err(format!("not a whole number; {range}")),
        }
    }
}

/// A thread count, 1..=256.
pub fn threads(s: &str) -> Result<usize, String> {
    int_in(1, MAX_THREADS)(s)
}

/// Attention sinks, 0..=1024.
pub fn sinks(s: &str) -> Result<usize, String> {
    int_in(0, MAX_SINKS)(s)
}

/// A window of at least one token (the model's trained context is checked once it is loaded;
/// 2^20 bounds it before that).
pub fn window(s: &str) -> Result<usize, String> {
    int_in(1, 1 << 20)(s).map_err(|e| {
        format!("{e} (the arena needs a window of at least 1 token, at most the model's trained context)")
    })
}

/// A count of 0 or more.
pub fn count(s: &str) -> Result<usize, String> {
    int_in(0, usize::MAX as u64)(s)
}

fn float(s: &str) -> Result<f32, ()> {
    s.trim().parse::<f32>().map_err(|_| ())
}

/// Temperature: finite and `>= 0` (0 = greedy).
pub fn temperature(s: &str) -> Result<f32, String> {
    match float(s) {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("allowed a finite number >= 0 (0 = greedy)".into()),
    }
}

/// A probability in `[0, 1]` (top-p, min-p).
pub fn probability(s: &str) -> Result<f32, String> {
    match float(s) {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("allowed a number in [0, 1]".into()),
    }
}

/// The repetition penalty: finite and `> 0` (1 = off).
pub fn penalty(s: &str) -> Result<f32, String> {
    match float(s) {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("allowed a finite number > 0 (1 = off)".into()),
    }
}

/// How many tokens to generate: `Some(count)`, or `None` for "until an end-of-generation
/// token" (`-n -1`, as in llama.cpp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NPredict(pub Option<u64>);

/// Parses `-n`: a count, or `-1`.
pub fn n_predict(s: &str) -> Result<NPredict, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(NPredict(None));
    }
    s.parse::<u64>()
        .map(|n| NPredict(Some(n)))
        .map_err(|_| format!("allowed -1 (until end of generation) or 0..={}", u64::MAX))
}

/// A sampler seed: `Some(seed)`, or `None` for a random one (`--seed -1`, as in llama.cpp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(pub Option<u64>);

/// Parses `--seed`: a seed, or `-1`.
pub fn seed(s: &str) -> Result<Seed, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(Seed(None));
    }
    s.parse::<u64>()
        .map(|n| Seed(Some(n)))
        .map_err(|_| format!("allowed -1 (random) or 0..={}", u64::MAX))
}

/// The repetition penalties' look-back: `Some(n)` tokens (0 = off), or `None` for the whole
/// window (`-1`, as in llama.cpp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastN(pub Option<usize>);

/// Parses `--repeat-last-n`: -1, or 0..=65536.
pub fn repeat_last_n(s: &str) -> Result<LastN, String> {
    match s.trim().parse::<i64>() {
        Ok(-1) => Ok(LastN(None)),
        Ok(v) if (0..=MAX_REPEAT_LAST_N).contains(&v) => Ok(LastN(Some(v as usize))),
        _ => Err(format!(
            "allowed -1 (the window), 0 (off) or up to {MAX_REPEAT_LAST_N}"
        )),
    }
}

/// A seed that differs from run to run (for `--seed -1`).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.write_u32(std::process::id());
    h.finish()
}

/// Warns on stderr when `-t` asks for more threads than the machine runs at once: they take
/// turns on the cores and every parallel region waits for the slowest. `capped_to_cores` says
/// that the caller runs no more threads than cores anyway (independent passes).
pub fn warn_threads(n: usize, capped_to_cores: bool) {
    if let Ok(cores) = std::thread::available_parallelism()
        && n > cores.get()
    {
        let cores = cores.get();
        if capped_to_cores {
            eprintln!(
                "eddy: warning: -t {n} is more than the {cores} cores available; running {cores} passes at a time"
            );
        } else {
            eprintln!(
                "eddy: warning: -t {n} is more than the {cores} cores available; the threads will take turns and run slower than -t {cores}"
            );
        }
    }
}

/// Refuses `value` of `flag` unless it is in `lo..=` the model's trained context
/// `n_ctx_train`.
pub fn within_context(
    flag: &str,
    value: usize,
    lo: usize,
    n_ctx_train: usize,
) -> Result<(), String> {
    let max = n_ctx_train.max(lo);
    if value > max {
        return Err(format!(
            "{flag} {value}: allowed {lo}..={max} (the model's trained context)"
        ));
    }
    Ok(())
}

/// Most bytes of text a file flag (`-f`, `--ids`) reads (a bound on memory for any file, even `/dev/zero`).
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// The text of `path`, or of standard input when `path` is `-`; at most 256 MiB of UTF-8.
pub fn read_text(flag: &str, path: &Path) -> Result<String, String> {
    let (name, reader): (String, Box<dyn std::io::Read>) = if path.as_os_str() == "-" {
        ("standard input".into(), Box::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path)
            .map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))?;
        (path.display().to_string(), Box::new(f))
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{flag} {name}: cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(format!(
            "{flag} {name}: more than {} MiB; allowed up to that",
            MAX_TEXT_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("{flag} {name}: not UTF-8 text: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_are_refused_with_the_range() {
        assert_eq!(threads("4"), Ok(4));
        for bad in ["0", "257", "-1", "99999999999999999999999", "nan", ""] {
            let e = threads(bad).unwrap_err();
            assert!(e.contains("1..=256"), "{bad}: {e}");
        }
        for bad in ["nan", "inf", "-inf", "-0.1", "1e40"] {
            assert!(temperature(bad).is_err(), "{bad}");
        }
        assert_eq!(temperature("0"), Ok(0.0));
        for bad in ["2", "-0.5", "nan", "inf"] {
            assert!(probability(bad).is_err(), "{bad}");
        }
        for bad in ["0", "-1", "nan", "inf"] {
            assert!(penalty(bad).is_err(), "{bad}");
        }
        assert_eq!(n_predict("-1"), Ok(NPredict(None)));
        assert_eq!(
            n_predict("18446744073709551615"),
            Ok(NPredict(Some(u64::MAX)))
        );
        assert!(n_predict("-2").is_err());
        assert!(n_predict("18446744073709551616").is_err());
        assert_eq!(seed("-1"), Ok(Seed(None)));
        assert_eq!(seed("42"), Ok(Seed(Some(42))));
        assert!(seed("-2").is_err());
        assert_eq!(repeat_last_n("-1"), Ok(LastN(None)));
        assert_eq!(repeat_last_n("0"), Ok(LastN(Some(0))));
        assert!(repeat_last_n("65537").is_err());
        assert!(repeat_last_n("-2").is_err());
        assert!(within_context("--window", 8193, 1, 8192).is_err());
        assert!(within_context("--window", 8192, 1, 8192).is_ok());
    }
}
