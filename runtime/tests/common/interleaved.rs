//! The shared check of the row-interleaved runtime tests (`interleaved_*.rs`): one model file,
//! loaded mapped, against the same bytes parsed from memory (no copies, the row-by-row kernels).

use std::path::Path;

use eddy::{Context, ContextParams, Model};
use eddy_quant::GgmlType;
use eddy_quant::interleaved::{interleaved_bytes, kernels_for};

/// The process's resident set (`field` `VmRSS`) or its peak (`VmHWM`).
#[cfg(target_os = "linux")]
pub fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// The process's resident set.
#[cfg(target_os = "linux")]
pub fn rss_bytes() -> usize {
    status_bytes("VmRSS:")
}

/// Bytes of the process's anonymous memory backed by transparent huge pages.
#[cfg(target_os = "linux")]
fn anon_huge_bytes() -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let line = smaps
        .lines()
        .find(|l| l.starts_with("AnonHugePages:"))
        .unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Whether the system gives huge pages to memory that asks for them (transparent huge pages
/// set to "always" or "madvise").
#[cfg(target_os = "linux")]
fn huge_pages_on_request() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]"))
}

fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
}

fn params(n_threads: usize) -> ContextParams {
    ContextParams {
        n_window: 64,
        n_threads,
        ..Default::default()
    }
}

/// The logits after each token, fed one at a time.
fn token_by_token(model: &Model, ids: &[u32], n_threads: usize) -> Vec<Vec<f32>> {
    let mut ctx = Context::new(model, params(n_threads)).unwrap();
    ids.iter()
        .map(|&t| {
            ctx.decode(&[t]).unwrap();
            ctx.logits().to_vec()
        })
        .collect()
}

/// Loads `path` and checks what the copies promise, for a model whose weight matrices of the
/// formats `formats` are copied where the tier has their kernels (each format on its own):
///
/// - resident memory grows by at most the file, the context's arena and 16 MB (the copies'
///   mapped pages are released);
/// - the copies are exactly those matrices (a tied embedding in one of the formats included);
/// - the outputs agree with the row-by-row model's (`Model::from_vec`) to f32 rounding, within
///   the KL bounds `max_kl` (any position) and `mean_kl` (over the positions);
/// - they are bit-identical for 2 threads, and batches below 8 tokens give the bits of single
///   tokens; with `batch_invariant` (every matrix a copy where the tier copies any, or only ever
///   multiplied by one column), batches of any size do.
pub fn check_interleaved(
    path: &Path,
    formats: &[GgmlType],
    max_kl: f64,
    mean_kl: f64,
    batch_invariant: bool,
) {
    let file_len = std::fs::metadata(path).unwrap().len() as usize;
    let tier = eddy_quant::dispatch::active_tier();

    // From here on, the peak resident set (VmHWM) counts only what follows (Linux 4.0 and
    // later: "5" to `clear_refs` resets it to the current resident set).
    #[cfg(target_os = "linux")]
    let (before, huge_before) = {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        (rss_bytes(), anon_huge_bytes())
    };
    let model = Model::load(path).unwrap();
    // The copies ask for huge pages (`eddy::model::HugePageBuffer`): where the system gives
    // them, most of the copies' bytes are on them (all but the partial 2 MiB extents at either
    // end, unless memory is too fragmented; half is the bound).
    #[cfg(target_os = "linux")]
    if huge_pages_on_request() {
        let huge = anon_huge_bytes().saturating_sub(huge_before);
        eprintln!(
            "copies {} bytes, {huge} of them on huge pages",
            model.repacked_bytes()
        );
        assert!(
            huge >= model.repacked_bytes() / 2,
            "{huge} bytes on huge pages for {} bytes of copies",
            model.repacked_bytes()
        );
    }
    let mut text = Vec::new();
    model.tokenizer().tokenize(
        "The quick brown fox jumps over the lazy dog, and then it runs into the forest to find \
         its friends, who are waiting by the river for the evening meal.",
        true,
        false,
        &mut text,
    );
    let ids = &text[..text.len().min(40)];
    // Resident memory with a context that has decoded the tokens (before this test keeps any
    // logits of its own).
    let mut ctx = Context::new(&model, params(1)).unwrap();
    for &t in ids {
        ctx.decode(&[t]).unwrap();
    }
    #[cfg(target_os = "linux")]
    {
        let grown = rss_bytes().saturating_sub(before);
        let peak = status_bytes("VmHWM:").saturating_sub(before);
        let arena = Context::memory_required(&model, &params(1)).unwrap();
        eprintln!(
            "file {file_len} bytes, copies {} bytes, arena {arena} bytes: RSS grew by {grown}, \
             its peak by {peak}",
            model.repacked_bytes()
        );
        // The peak too: loading copies matrices out of the mapped file, whose pages must not
        // stay resident alongside the copies.
        assert!(
            peak <= file_len + arena + (16 << 20),
            "peak RSS grew by {peak} bytes (now {grown}): more than the file ({file_len}), the \
             arena ({arena}) and 16 MB"
        );
    }
    drop(ctx);
    let mapped = token_by_token(&model, ids, 1);

    // Every matrix of the formats has its copy, where the tier has the format's kernels.
    let w = model.weights();
    let (mut want, mut of_formats) = (0, 0);
    let mut matrices: Vec<_> = w
        .layers
        .iter()
        .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
        .collect();
    matrices.push(&w.output);
    // The others are copied as they are, onto huge pages, on Linux x86-64 where the system
    // gives huge pages (`eddy::model`'s `plain_copies`).
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    let plain_copies = huge_pages_on_request();
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    let plain_copies = false;
    let mut plain = 0;
    for t in matrices {
        let interleaved = formats.contains(&t.ty).then(|| {
            let bytes = interleaved_bytes(t.ty, t.rows, t.cols).unwrap();
            of_formats += bytes;
            bytes
        });
        match interleaved {
            Some(bytes) if kernels_for(tier, t.ty).is_some() => want += bytes,
            _ if plain_copies => plain += t.rows * t.row_bytes(),
            _ => {}
        }
    }
    assert!(
        of_formats > 0,
        "no matrix of {formats:?} in {}",
        path.display()
    );
    eprintln!(
        "tier {tier}: {} bytes of copies ({want} interleaved, {plain} as they are)",
        model.repacked_bytes()
    );
    assert_eq!(model.repacked_bytes(), want + plain);
    let copies = want > 0;
    let in_memory = Model::from_vec(std::fs::read(path).unwrap()).unwrap();
    assert_eq!(in_memory.repacked_bytes(), 0);

    // The same tokens through the row-by-row kernels: the same model to f32 rounding. A wrong
    // block, scale or row moves logits by whole units.
    let rows = token_by_token(&in_memory, ids, 1);
    let (mut worst, mut total) = (0f64, 0f64);
    for (i, (a, b)) in mapped.iter().zip(&rows).enumerate() {
        let (la, lb) = (logsumexp(a), logsumexp(b));
        let kl: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| {
                let (px, py) = (x as f64 - la, y as f64 - lb);
                px.exp() * (px - py)
            })
            .sum();
        worst = worst.max(kl);
        total += kl;
        assert!(
            kl <= max_kl,
            "position {i}: KL {kl} between the copies and the rows"
        );
        let top = eddy::sampler::argmax(a) as usize;
        let second = (0..a.len())
            .filter(|&t| t != top)
            .map(|t| a[t])
            .fold(f32::NEG_INFINITY, f32::max);
        if a[top] - second >= 0.5 {
            assert_eq!(eddy::sampler::argmax(b) as usize, top, "position {i}");
        }
    }
    let mean = total / ids.len() as f64;
    eprintln!("interleaved vs row by row: KL at most {worst:.5}, mean {mean:.5}");
    assert!(mean <= mean_kl, "mean KL {mean}");
    if copies {
        assert!(mapped != rows, "the copies were not used");
    }

    // Bit-identical for 2 threads, and for batches: below 8 tokens always; of any size where
    // every product the batch makes computes the panels' arithmetic whatever the batch.
    assert!(token_by_token(&model, ids, 2) == mapped, "2 threads differ");
    let mut ctx = Context::new(&model, params(1)).unwrap();
    let mut pos = 0;
    // Where batches of 8 or more are not invariant, the cache they write differs too, so only
    // the batches before the first of them must match.
    let mut same_cache = true;
    for chunk in [5usize, 1, 12, 3, 9] {
        ctx.decode(&ids[pos..pos + chunk]).unwrap();
        pos += chunk;
        same_cache &= (copies && batch_invariant) || chunk < 8;
        if same_cache {
            assert!(
                ctx.logits() == &mapped[pos - 1][..],
                "a batch of {chunk} differs from single tokens at {pos}"
            );
        }
    }
}
