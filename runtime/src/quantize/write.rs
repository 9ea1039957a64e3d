//! Writing the quantized file: the header as llama.cpp's GGUF writer lays it out, then each
//! tensor streamed in slabs of rows, converted on the thread pool.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::GgmlType;
use crate::gguf::{Gguf, ValueType, writer::put_str};
use crate::threads::ThreadPool;

use super::recipe::n_dims;
use super::{
    Plan, QuantizeError, QuantizeParams, QuantizeProgress, QuantizeSummary, TensorPlan,
    check_paths, plan,
};

/// ggml's quantization format version (`GGML_QNT_VERSION`), written as
/// `general.quantization_version`.
const QUANTIZATION_VERSION: u32 = 2;
/// GGUF version written.
const GGUF_VERSION: u32 = 3;
/// Keys of the input not copied: the two the writer sets again (at the end, as llama.cpp's
/// `gguf_set_val_u32` moves a key it sets to the end) and the split keys of a multi-part file.
const DROPPED_KEYS: &[&str] = &[
    "general.quantization_version",
    "general.file_type",
    "split.no",
    "split.count",
    "split.tensors.count",
];
/// Weights per unit of parallel work: enough to make a chunk worth a claim.
const CHUNK_WEIGHTS: usize = 16 * 1024;

/// Quantizes the model at `input` into `output` (see the [module notes](super)), calling
/// `progress` after every slab of rows. On success the output exists complete; on failure
/// nothing is left under either the output's name or the temporary one.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    params: &QuantizeParams,
    progress: &mut dyn FnMut(&QuantizeProgress<'_>),
) -> Result<QuantizeSummary, QuantizeError> {
    check_paths(input, output, params.overwrite)?;
    let gguf = Gguf::open(input)?;
    let plan = plan(&gguf, params)?;
    let io_in = |source| QuantizeError::Io {
        path: input.to_owned(),
        source,
    };
    let mut reader = File::open(input).map_err(io_in)?;
    let pool = ThreadPool::new(params.n_threads).map_err(|source| QuantizeError::Io {
        path: PathBuf::from("(thread pool)"),
        source,
    })?;

    let temp = TempFile::create(output)?;
    let io_out = |source| QuantizeError::Io {
        path: temp.path.clone(),
        source,
    };
    let align = gguf.alignment();
    let mut w = BufWriter::with_capacity(1 << 20, temp.file.try_clone().map_err(io_out)?);
    let header = header(&gguf, &plan, params, align);
    w.write_all(&header).map_err(io_out)?;
    let mut written = header.len() as u64;

    let bytes_total: u64 = gguf.tensors().map(|t| t.data.len() as u64).sum();
    let mut bytes_done = 0u64;
    let mut bufs = Buffers::default();
    for (i, t) in plan.tensors.iter().enumerate() {
        let src = gguf.tensor(&t.name).ok_or_else(|| QuantizeError::Tensor {
            name: t.name.clone(),
            problem: "vanished from the input".into(),
        })?;
        let mut report = |done: u64| {
            progress(&QuantizeProgress {
                tensor: i,
                n_tensors: plan.tensors.len(),
                name: &t.name,
                bytes_done: bytes_done + done,
                bytes_total,
            })
        };
        let n = write_tensor(
            t,
            src.file_offset,
            src.data.len() as u64,
            &mut reader,
            &mut w,
            &pool,
            params.max_buffer_bytes,
            &mut bufs,
            &mut report,
        )
        .map_err(|e| match e {
            Failure::Read(source) => io_in(source),
            Failure::Write(source) => io_out(source),
            Failure::Other(e) => e,
        })?;
        bytes_done += src.data.len() as u64;
        written += n;
        let pad = written.next_multiple_of(align) - written;
        w.write_all(&vec![0; pad as usize]).map_err(io_out)?;
        written += pad;
    }
    w.flush().map_err(io_out)?;
    drop(w);
    let output_bytes = written;
    temp.commit(output)?;
    Ok(QuantizeSummary {
        n_tensors: plan.tensors.len(),
        n_converted: plan.tensors.iter().filter(|t| t.converts()).count(),
        n_fallback: plan.n_fallback,
        input_bytes: gguf.file_len(),
        output_bytes,
    })
}

/// The output's header: magic, version, counts, metadata, tensor infos, padding to `align`.
fn header(gguf: &Gguf, plan: &Plan, params: &QuantizeParams, align: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let kvs: Vec<_> = gguf
        .metadata_raw()
        .filter(|(k, _, _)| !DROPPED_KEYS.contains(k))
        .collect();
    out.extend(b"GGUF");
    out.extend(GGUF_VERSION.to_le_bytes());
    out.extend((plan.tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64 + 2).to_le_bytes());
    for (key, ty, raw) in kvs {
        put_str(&mut out, key);
        out.extend((ty as u32).to_le_bytes());
        out.extend(raw);
    }
    for (key, v) in [
        ("general.quantization_version", QUANTIZATION_VERSION),
        ("general.file_type", params.file_type.id()),
    ] {
        put_str(&mut out, key);
        out.extend((ValueType::U32 as u32).to_le_bytes());
        out.extend(v.to_le_bytes());
    }
    let mut offset = 0u64;
    for t in &plan.tensors {
        put_str(&mut out, &t.name);
        let nd = n_dims(&t.dims);
        out.extend((nd as u32).to_le_bytes());
        for i in 0..nd {
            out.extend(t.dims.get(i).copied().unwrap_or(1).to_le_bytes());
        }
        out.extend(t.to.id().to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset = (offset + out_bytes(t)).next_multiple_of(align);
    }
    out.resize((out.len() as u64).next_multiple_of(align) as usize, 0);
    out
}

/// Bytes of the tensor in the output type (checked whole blocks by `plan`).
fn out_bytes(t: &TensorPlan) -> u64 {
    let n: u64 = t.dims.iter().product();
    t.to.bytes_for(n).unwrap_or(0)
}

/// The reusable buffers of the conversion: one slab of source bytes, its f32 values, and the
/// converted bytes.
#[derive(Default)]
struct Buffers {
    src: Vec<u8>,
    f32s: Vec<f32>,
    dst: Vec<u8>,
}

enum Failure {
    Read(std::io::Error),
    Write(std::io::Error),
    Other(QuantizeError),
}

/// Writes one tensor's data (no padding) and returns its size.
#[allow(clippy::too_many_arguments)]
fn write_tensor(
    t: &TensorPlan,
    file_offset: u64,
    len: u64,
    reader: &mut File,
    w: &mut impl Write,
    pool: &ThreadPool,
    budget: usize,
    bufs: &mut Buffers,
    report: &mut dyn FnMut(u64),
) -> Result<u64, Failure> {
    reader
        .seek(SeekFrom::Start(file_offset))
        .map_err(Failure::Read)?;
    let n_per_row = t.dims.first().copied().unwrap_or(1) as usize;
    let src_row = row_bytes(t.from, n_per_row);
    let n_rows = if src_row == 0 {
        0
    } else {
        (len / src_row as u64) as usize
    };
    if !t.converts() {
        // Copied as it is, in slabs of whole rows.
        let rows_per_slab = (budget / src_row.max(1)).max(1);
        let mut done = 0u64;
        while done < len {
            let size = ((rows_per_slab * src_row) as u64).min(len - done) as usize;
            bufs.src.resize(size, 0);
            reader.read_exact(&mut bufs.src).map_err(Failure::Read)?;
            w.write_all(&bufs.src).map_err(Failure::Write)?;
            done += size as u64;
            report(done);
        }
        return Ok(len);
    }
    let dst_row = row_bytes(t.to, n_per_row);
    let per_row = src_row + dst_row + 4 * n_per_row;
    let rows_per_slab = (budget / per_row).max(1);
    let mut written = 0u64;
    let mut row = 0;
    while row < n_rows {
        let rows = rows_per_slab.min(n_rows - row);
        bufs.src.resize(rows * src_row, 0);
        bufs.f32s.resize(rows * n_per_row, 0.0);
        bufs.dst.resize(rows * dst_row, 0);
        reader.read_exact(&mut bufs.src).map_err(Failure::Read)?;
        convert_rows(t, n_per_row, pool, bufs).map_err(Failure::Other)?;
        w.write_all(&bufs.dst).map_err(Failure::Write)?;
        written += bufs.dst.len() as u64;
        row += rows;
        report((row * src_row) as u64);
    }
    Ok(written)
}

fn row_bytes(ty: GgmlType, n: usize) -> usize {
    eddy_quant::row_bytes(ty, n).unwrap_or(0)
}

/// One chunk of a slab: its source bytes, f32 values and converted bytes.
type Job<'a> = Mutex<(&'a [u8], &'a mut [f32], &'a mut [u8])>;

/// Converts the slab in `bufs.src` into `bufs.dst` through `bufs.f32s`, in parallel chunks of
/// whole rows. Every row is converted alone, so the bytes do not depend on the chunking.
fn convert_rows(
    t: &TensorPlan,
    n_per_row: usize,
    pool: &ThreadPool,
    bufs: &mut Buffers,
) -> Result<(), QuantizeError> {
    let rows_per_chunk = (CHUNK_WEIGHTS / n_per_row.max(1)).max(1);
    let (src_row, dst_row) = (row_bytes(t.from, n_per_row), row_bytes(t.to, n_per_row));
    let jobs: Vec<Job<'_>> = bufs
        .src
        .chunks(rows_per_chunk * src_row)
        .zip(bufs.f32s.chunks_mut(rows_per_chunk * n_per_row))
        .zip(bufs.dst.chunks_mut(rows_per_chunk * dst_row))
        .map(|((s, f), d)| Mutex::new((s, f, d)))
        .collect();
    let failure: Mutex<Option<QuantizeError>> = Mutex::new(None);
    pool.run_chunks(jobs.len(), &|_, c| {
        let mut job = jobs[c].lock().unwrap_or_else(|e| e.into_inner());
        let (src, f32s, dst) = &mut *job;
        let result = eddy_quant::dequantize(t.from, src, f32s)
            .map_err(|e| quant_error(t, e))
            .and_then(|()| {
                if f32s.iter().all(|v| v.is_finite()) {
                    Ok(())
                } else {
                    Err(QuantizeError::NonFinite(t.name.clone()))
                }
            })
            .and_then(|()| {
                eddy_quant::quantize_fused(t.to, f32s, dst).map_err(|e| quant_error(t, e))
            });
        if let Err(e) = result {
            failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn quant_error(t: &TensorPlan, e: eddy_quant::QuantError) -> QuantizeError {
    QuantizeError::Tensor {
        name: t.name.clone(),
        problem: e.to_string(),
    }
}

/// The output under construction: a hidden file next to the output, removed on drop unless
/// committed (renamed to the output).
struct TempFile {
    path: PathBuf,
    file: File,
    committed: bool,
}

impl TempFile {
    fn create(output: &Path) -> Result<TempFile, QuantizeError> {
        let name = output
            .file_name()
            .ok_or_else(|| QuantizeError::Io {
                path: output.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
            })?
            .to_string_lossy();
        let path = output.with_file_name(format!(".{name}.eddy-{}.part", std::process::id()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| QuantizeError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(TempFile {
            path,
            file,
            committed: false,
        })
    }

    fn commit(mut self, output: &Path) -> Result<(), QuantizeError> {
        std::fs::rename(&self.path, output).map_err(|source| QuantizeError::Io {
            path: output.to_owned(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
