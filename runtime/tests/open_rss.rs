//! Opening a model maps it; it must not read it. Resident memory after `Gguf::open` grows by no
//! more than the header's pages plus the parser's small tables, whatever the file's size.
//!
//! One test per binary: the measurement reads the whole process's RSS.

mod common;

#[cfg(target_os = "linux")]
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn open_touches_only_the_header() {
    use eddy::gguf::Gguf;
    for file in [common::GEMMA3, common::SMOLLM2] {
        let Some(path) = common::model(file) else {
            continue;
        };
        let before = rss_bytes();
        let g = Gguf::open(&path).unwrap();
        let after = rss_bytes();
        let grown = after.saturating_sub(before);
        let header = g.data_offset();
        eprintln!(
            "{file}: file {} bytes, header {header} bytes, RSS grew by {grown} bytes on open",
            g.file_len()
        );
        // The header pages (metadata incl. vocabulary) plus 4 MiB for tables and page rounding.
        assert!(
            grown <= header + (4 << 20),
            "{file}: RSS grew by {grown} bytes; header is {header}"
        );
        assert!(
            grown < g.file_len() / 4,
            "{file}: open read a large part of the file"
        );

        // Touching one tensor's data pages it in: the map is lazy, not a copy.
        let t = g.tensor("token_embd.weight").unwrap();
        let sum: u64 = t.data.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        let touched = rss_bytes().saturating_sub(after);
        eprintln!(
            "{file}: touching token_embd.weight ({} bytes) added {touched} bytes of RSS (checksum {sum})",
            t.data.len()
        );
        assert!(touched >= t.data.len() as u64 / 2);
    }
}
