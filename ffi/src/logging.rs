//! The log callback: a `log::Log` implementation that forwards the runtime's log records to
//! the function registered with `eddy_set_log_callback`.

use std::ffi::{CString, c_char, c_void};
use std::sync::{Once, RwLock};

use crate::boundary::{Failure, FfiResult, guard};
use crate::eddy_status;

/// Severity of a log message (smaller is more severe).
#[allow(non_camel_case_types)]
pub type eddy_log_level = u32;
/// Logging off (as a maximum level: deliver nothing).
pub const EDDY_LOG_OFF: eddy_log_level = 0;
/// Errors.
pub const EDDY_LOG_ERROR: eddy_log_level = 1;
/// Warnings (for example a tokenizer metadata value that is out of range and ignored).
pub const EDDY_LOG_WARN: eddy_log_level = 2;
/// Information.
pub const EDDY_LOG_INFO: eddy_log_level = 3;
/// Debugging detail.
pub const EDDY_LOG_DEBUG: eddy_log_level = 4;
/// Very verbose tracing.
pub const EDDY_LOG_TRACE: eddy_log_level = 5;

/// Receives one log message.
///
/// level is one of EDDY_LOG_ERROR..EDDY_LOG_TRACE; message is a NUL-terminated UTF-8 line
/// without a trailing newline, valid only during the call; user_data is the pointer given to
/// eddy_set_log_callback. The callback runs on whichever thread logged (any thread that calls
/// into Eddy), possibly on several threads at once; it must not call eddy_set_log_callback.
#[allow(non_camel_case_types)]
pub type eddy_log_callback = Option<
    unsafe extern "C" fn(level: eddy_log_level, message: *const c_char, user_data: *mut c_void),
>;

#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(eddy_log_level, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: `eddy_set_log_callback` documents that the callback and its user_data are called
// from any thread; the caller takes responsibility for that when registering them. Eddy never
// dereferences `user_data` itself.
unsafe impl Send for Sink {}
// SAFETY: as for Send: the pointer is only passed back to the caller's callback.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALL: Once = Once::new();

struct Bridge;

static BRIDGE: Bridge = Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Copy the sink out so that the lock is not held while C code runs.
        let sink = match SINK.read() {
            Ok(s) => *s,
            Err(poisoned) => *poisoned.into_inner(),
        };
        let Some(sink) = sink else { return };
        let text = format!("{}", record.args()).replace('\0', " ");
        let Ok(message) = CString::new(text) else {
            return;
        };
        let level = match record.level() {
            log::Level::Error => EDDY_LOG_ERROR,
            log::Level::Warn => EDDY_LOG_WARN,
            log::Level::Info => EDDY_LOG_INFO,
            log::Level::Debug => EDDY_LOG_DEBUG,
            log::Level::Trace => EDDY_LOG_TRACE,
        };
        // SAFETY: the callback was registered through eddy_set_log_callback, whose contract
        // makes it callable from any thread with this user_data; the message is a valid C
        // string that outlives the call.
        unsafe { (sink.callback)(level, message.as_ptr(), sink.user_data) };
    }

    fn flush(&self) {}
}

fn level_filter(level: eddy_log_level) -> FfiResult<log::LevelFilter> {
    Ok(match level {
        EDDY_LOG_OFF => log::LevelFilter::Off,
        EDDY_LOG_ERROR => log::LevelFilter::Error,
        EDDY_LOG_WARN => log::LevelFilter::Warn,
        EDDY_LOG_INFO => log::LevelFilter::Info,
        EDDY_LOG_DEBUG => log::LevelFilter::Debug,
        EDDY_LOG_TRACE => log::LevelFilter::Trace,
        _ => {
            return Err(Failure::invalid(format!(
                "log level {level} is not one of EDDY_LOG_OFF..EDDY_LOG_TRACE"
            )));
        }
    })
}

/// Routes Eddy's log messages to callback, for messages at max_level or more severe.
///
/// callback NULL (or max_level EDDY_LOG_OFF) turns logging off; by default it is off and
/// nothing is printed. The registration is process-wide (not per handle). Calls to the
/// previous callback that are already running on other threads may still complete after this
/// returns. Safe to call from any thread.
///
/// Returns EDDY_STATUS_OK, or EDDY_STATUS_INVALID_ARGUMENT for an unknown max_level (the
/// registration is then unchanged).
///
/// # Safety
/// callback, if not NULL, must be safe to call from any thread with user_data until it is
/// replaced by another call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_set_log_callback(
    callback: eddy_log_callback,
    user_data: *mut c_void,
    max_level: eddy_log_level,
) -> eddy_status {
    guard(|| {
        let filter = level_filter(max_level)?;
        INSTALL.call_once(|| {
            // Fails only if the host program installed its own `log` logger first (a Rust
            // host); its logger then receives the messages instead.
            if log::set_logger(&BRIDGE).is_err() {
                crate::boundary::set_last_error("another log::Log logger is installed");
            }
        });
        let sink = callback.map(|callback| Sink {
            callback,
            user_data,
        });
        let mut slot = match SINK.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = sink;
        drop(slot);
        log::set_max_level(if sink.is_some() {
            filter
        } else {
            log::LevelFilter::Off
        });
        Ok(())
    })
}
