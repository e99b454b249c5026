//! In-process Jsonnet: the `.jsonnet` files of a directory source, evaluated
//! with jrsonnet the way Argo CD evaluates them with go-jsonnet.
//!
//! Each selected file ([`FileFilter::selects_jsonnet`]: the same `recurse`,
//! `include` and `exclude` as YAML files) is evaluated on its own, with the
//! source's external variables and top-level arguments, and gives one object
//! or an array of objects. `.libsonnet` files are only ever imported.
//!
//! Imports are resolved as go-jsonnet's file importer does with Argo CD's
//! library path: the importing file's folder, then the `libs` folders (the
//! last one first), then the application folder. Every import must stay
//! inside the repository; nothing outside it is ever read.
//!
//! The evaluation runs on a thread of its own, bounded in time, output size
//! and call depth; see [`evaluate`].

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jrsonnet_evaluator::error::ErrorKind;
use jrsonnet_evaluator::function::{CallLocation, TlaArg};
use jrsonnet_evaluator::gc::GcHashMap;
use jrsonnet_evaluator::manifest::JsonFormat;
use jrsonnet_evaluator::parser::{
    self as jparser, ParserSettings, Source, SourcePath, SourcePathT,
};
use jrsonnet_evaluator::trace::PathResolver;
use jrsonnet_evaluator::{IStr, ImportResolver, State};
use jrsonnet_gcmodule::Trace;
use serde_json::Value;

use crate::model::{DirectorySource, JsonnetSource, JsonnetVar};
use crate::render::FileFilter;

/// One object a Jsonnet file evaluated to.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonnetOutput {
    /// `path#index`: the file, relative to the application folder, and the
    /// object's 0-based position in the file's output (`#0` for a file that
    /// gives one object), like the origins of plain-directory render.
    pub origin: String,
    /// The object as Jsonnet manifests it (keys sorted). It is neither
    /// checked to be a Kubernetes object nor normalized: the caller does that
    /// as for YAML files (including the expansion of `List` kinds).
    pub object: Value,
}

/// Bounds on one [`evaluate`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonnetLimits {
    /// Wall-clock time for evaluating all the files of the application.
    pub timeout: Duration,
    /// Most bytes of (minified) JSON the files may produce together.
    pub max_output_bytes: usize,
    /// Deepest nesting of Jsonnet calls before the evaluation fails with a
    /// stack overflow error. go-jsonnet (so Argo CD) allows 500.
    pub max_stack: usize,
    /// How many evaluations that timed out may still be running in the
    /// background before a new one is refused with [`JsonnetError::Busy`].
    pub max_abandoned: usize,
}

impl Default for JsonnetLimits {
    fn default() -> Self {
        JsonnetLimits {
            timeout: Duration::from_secs(60),
            max_output_bytes: 64 << 20,
            max_stack: 500,
            max_abandoned: 2,
        }
    }
}

/// The error returned by [`evaluate`].
///
/// Variants carry messages rather than their sources, so that a render
/// result can be cached, cloned and compared. File paths are relative to the
/// application folder; paths inside evaluator messages (imports, stack
/// traces) are relative to the repository root.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonnetError {
    /// `spec.source.directory` cannot be used as given: an `include` or
    /// `exclude` glob that does not compile, a library folder or the
    /// application path outside the repository, code in an external
    /// variable or top-level argument that does not parse.
    #[error("jsonnet: {message}")]
    Options {
        /// What is wrong and what to do.
        message: String,
    },
    /// The application folder, or a Jsonnet file in it, cannot be listed or
    /// read.
    #[error("jsonnet {path}: cannot read it: {message}")]
    Read {
        /// The folder or file, relative to the application folder.
        path: String,
        /// Why.
        message: String,
    },
    /// The evaluator failed: a syntax error, an `error` expression, a failed
    /// assertion, an import refused or not found, a recursion too deep.
    #[error("jsonnet {file}: {message}")]
    Evaluate {
        /// The file evaluated.
        file: String,
        /// The evaluator's message with where it happened (`file:line:column`)
        /// and what to do.
        message: String,
    },
    /// The file evaluated, but not to an object or an array of objects.
    #[error("jsonnet {file}: {message}")]
    Output {
        /// The file evaluated.
        file: String,
        /// What it gave instead.
        message: String,
    },
    /// The files together produced more JSON than
    /// [`JsonnetLimits::max_output_bytes`].
    #[error(
        "jsonnet {file}: the output passes the {limit}-byte limit for the Jsonnet of one application; make it smaller or split the application"
    )]
    TooLarge {
        /// The file whose output passed the limit.
        file: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The evaluation did not finish within [`JsonnetLimits::timeout`]. Its
    /// thread may still be running (see [`evaluate`]).
    #[error(
        "jsonnet {file}: evaluation did not finish within {}s; look for a recursion that explodes, or make the computation smaller",
        .timeout.as_secs_f64()
    )]
    Timeout {
        /// The file being evaluated when the time was up.
        file: String,
        /// The limit.
        timeout: Duration,
    },
    /// Too many earlier evaluations that ran out of time are still running;
    /// this one was not started. Worth retrying.
    #[error(
        "jsonnet: {running} earlier evaluations that ran out of time are still running, so no new one starts until they end; it is tried again later (fix the Jsonnet that takes too long)"
    )]
    Busy {
        /// How many are still running.
        running: usize,
    },
    /// The evaluator could not be started or stopped unexpectedly (a bug in
    /// it, not in the Jsonnet).
    #[error("jsonnet {file}: internal error of the evaluator: {message}")]
    Internal {
        /// The file being evaluated.
        file: String,
        /// What happened.
        message: String,
    },
}

impl JsonnetError {
    /// Whether trying again later may succeed without anyone changing
    /// anything.
    pub fn is_spurious(&self) -> bool {
        matches!(self, JsonnetError::Busy { .. } | JsonnetError::Read { .. })
    }
}

/// Evaluations that timed out and whose threads are still running: the
/// evaluator cannot be interrupted, so they run until they end on their own.
/// Process-wide, like the threads.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// Stack of the evaluation thread. The evaluator grows its stack on the heap
/// for deep Jsonnet calls, but the parser and some built-ins recurse on the
/// thread's own stack; this is address space, only touched pages cost memory.
const STACK_SIZE: usize = 256 << 20;

/// Evaluates the `.jsonnet` files of the application folder `app_path`
/// (repository-relative, `""` for the root) of the repository checked out at
/// `root`, as selected by `options`.
///
/// The result is ordered by file path, then position in the file. A file
/// that evaluates to `null` or `[]` gives nothing, and `null` items of an
/// array are skipped; no selected file is not an error.
///
/// Every file is evaluated with a fresh evaluator (as Argo CD does), on one
/// dedicated thread with a large stack. jrsonnet offers no way to interrupt
/// an evaluation: when [`JsonnetLimits::timeout`] passes, this returns
/// [`JsonnetError::Timeout`] at once, but the thread keeps running until the
/// evaluation ends on its own (its result is dropped). While
/// [`JsonnetLimits::max_abandoned`] such threads run, new evaluations are
/// refused. Memory is not bounded other than by the time limit.
///
/// # Errors
///
/// [`JsonnetError::Options`] for options that cannot be used;
/// [`JsonnetError::Read`] when the folder or a file cannot be read;
/// [`JsonnetError::Evaluate`] when a file does not evaluate (the message
/// names where); [`JsonnetError::Output`] when it evaluates to something
/// else than objects; [`JsonnetError::TooLarge`], [`JsonnetError::Timeout`]
/// and [`JsonnetError::Busy`] for the limits; [`JsonnetError::Internal`]
/// when the evaluator fails.
pub fn evaluate(
    root: &Path,
    app_path: &str,
    options: &DirectorySource,
    limits: &JsonnetLimits,
) -> Result<Vec<JsonnetOutput>, JsonnetError> {
    let filter = FileFilter::new(options).map_err(|e| JsonnetError::Options {
        message: e.to_string(),
    })?;
    let root = root.canonicalize().map_err(|e| JsonnetError::Read {
        path: ".".into(),
        message: format!("the repository checkout: {e}"),
    })?;
    let app = repo_folder(&root, app_path).map_err(|reason| JsonnetError::Options {
        message: format!("the application path {app_path:?} {reason}"),
    })?;
    let files = select_files(&root, &app, &filter, options.recurse)?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let jsonnet = options.jsonnet.clone().unwrap_or_default();
    let mut search = Vec::with_capacity(jsonnet.libs.len() + 1);
    for lib in jsonnet.libs.iter().rev() {
        let folder = repo_folder(&root, lib).map_err(|reason| JsonnetError::Options {
            message: format!("spec.source.directory.jsonnet.libs entry {lib:?} {reason}"),
        })?;
        search.push(folder);
    }
    search.push(app.clone());

    let job = Job {
        root,
        app,
        search,
        files,
        jsonnet,
        max_output_bytes: limits.max_output_bytes,
        max_stack: limits.max_stack,
    };
    run_with_timeout(job, limits)
}

/// Everything the evaluation thread needs; all owned, so it can move there.
struct Job {
    /// The canonical repository root.
    root: PathBuf,
    /// The application folder, repository-relative.
    app: String,
    /// Library search path, repository-relative, in search order.
    search: Vec<String>,
    /// The selected files, in output order.
    files: Vec<Selected>,
    jsonnet: JsonnetSource,
    max_output_bytes: usize,
    max_stack: usize,
}

/// A selected `.jsonnet` file.
struct Selected {
    /// Relative to the application folder, `/`-separated.
    path: String,
    /// The file itself: canonical, inside the root, a regular file.
    real: PathBuf,
}

/// What the evaluation thread reports.
enum Progress {
    /// It starts on this file (index into `Job::files`).
    Started(usize),
    /// It is done.
    Finished(Result<Vec<JsonnetOutput>, JsonnetError>),
    /// It panicked, with this message.
    Panicked(String),
}

/// Whether the evaluation thread has ended and whether its caller gave up
/// waiting, under one lock so that [`ABANDONED`] counts exactly the running
/// threads nobody waits for.
#[derive(Default)]
struct Watch {
    finished: bool,
    abandoned: bool,
}

/// Marks the thread finished when it ends, even by a panic.
struct FinishGuard(Arc<Mutex<Watch>>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        let mut watch = self.0.lock().unwrap_or_else(|e| e.into_inner());
        watch.finished = true;
        if watch.abandoned {
            ABANDONED.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn run_with_timeout(job: Job, limits: &JsonnetLimits) -> Result<Vec<JsonnetOutput>, JsonnetError> {
    let running = ABANDONED.load(Ordering::SeqCst);
    if running >= limits.max_abandoned {
        return Err(JsonnetError::Busy { running });
    }
    let deadline = Instant::now() + limits.timeout;
    let names: Vec<String> = job.files.iter().map(|f| f.path.clone()).collect();
    let watch = Arc::new(Mutex::new(Watch::default()));
    let (tx, rx) = mpsc::channel();
    let guard = FinishGuard(Arc::clone(&watch));
    std::thread::Builder::new()
        .name("jsonnet".into())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let _guard = guard;
            let panic_tx = tx.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_job(&job, &tx);
            }));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                let _ = panic_tx.send(Progress::Panicked(message));
            }
        })
        .map_err(|e| JsonnetError::Internal {
            file: names[0].clone(),
            message: format!("cannot start the evaluation thread: {e}"),
        })?;

    let mut current = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Progress::Started(index)) => current = index,
            Ok(Progress::Finished(result)) => return result,
            Ok(Progress::Panicked(message)) => {
                return Err(JsonnetError::Internal {
                    file: names[current].clone(),
                    message: format!("it panicked: {message}"),
                });
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut watch = watch.lock().unwrap_or_else(|e| e.into_inner());
                if !watch.finished {
                    watch.abandoned = true;
                    ABANDONED.fetch_add(1, Ordering::SeqCst);
                }
                return Err(JsonnetError::Timeout {
                    file: names[current].clone(),
                    timeout: limits.timeout,
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(JsonnetError::Internal {
                    file: names[current].clone(),
                    message: "the evaluation thread ended without a result".into(),
                });
            }
        }
    }
}

/// The body of the evaluation thread.
fn run_job(job: &Job, tx: &mpsc::Sender<Progress>) {
    // Thread-local in jrsonnet; the guard keeps it for the thread's life.
    let _depth = jrsonnet_evaluator::stack::limit_stack_depth(job.max_stack);
    let mut outputs = Vec::new();
    let mut budget = job.max_output_bytes;
    let mut result = Ok(());
    for (index, file) in job.files.iter().enumerate() {
        if tx.send(Progress::Started(index)).is_err() {
            return; // Nobody waits any more.
        }
        result = evaluate_file(job, file, &mut budget, &mut outputs);
        if result.is_err() {
            break;
        }
    }
    // Frees the evaluator's reference cycles now rather than at thread exit.
    jrsonnet_gcmodule::collect_thread_cycles();
    let _ = tx.send(Progress::Finished(result.map(|()| outputs)));
}

fn evaluate_file(
    job: &Job,
    file: &Selected,
    budget: &mut usize,
    outputs: &mut Vec<JsonnetOutput>,
) -> Result<(), JsonnetError> {
    let (state, tlas) = new_state(job, &file.path)?;
    let fail = |error: jrsonnet_evaluator::Error| JsonnetError::Evaluate {
        file: file.path.clone(),
        message: describe(&error, job.max_stack),
    };
    let source = SourcePath::new(RepoFile {
        path: join_repo(&job.app, &file.path),
        real: file.real.clone(),
    });
    let value = state.import_resolved(source).map_err(fail)?;
    let value = jrsonnet_evaluator::apply_tla(state.clone(), &tlas, value).map_err(fail)?;
    let text = value.manifest(JsonFormat::minify()).map_err(fail)?;
    if text.len() > *budget {
        return Err(JsonnetError::TooLarge {
            file: file.path.clone(),
            limit: job.max_output_bytes,
        });
    }
    *budget -= text.len();
    let output = |message: String| JsonnetError::Output {
        file: file.path.clone(),
        message,
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| output(format!("its output cannot be read back as JSON: {e}")))?;
    const WANTED: &str = "a Jsonnet file must give a Kubernetes object or an array of them";
    let objects = match value {
        Value::Object(_) => vec![value],
        Value::Null => Vec::new(),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if !(item.is_object() || item.is_null()) {
                    return Err(output(format!(
                        "item {i} of its array is {}, not an object; {WANTED}",
                        type_name(item)
                    )));
                }
            }
            items.into_iter().filter(Value::is_object).collect()
        }
        other => {
            return Err(output(format!(
                "it evaluates to {}; {WANTED}",
                type_name(&other)
            )));
        }
    };
    outputs.extend(
        objects
            .into_iter()
            .enumerate()
            .map(|(i, object)| JsonnetOutput {
                origin: format!("{}#{i}", file.path),
                object,
            }),
    );
    Ok(())
}

/// A fresh evaluator for one file: the standard library with the external
/// variables, the confined importer, and the top-level arguments.
fn new_state(job: &Job, file: &str) -> Result<(State, GcHashMap<IStr, TlaArg>), JsonnetError> {
    let stdlib = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Absolute);
    stdlib.settings_mut().trace_printer = Box::new(LogTrace {
        file: file.to_string(),
    });
    for var in &job.jsonnet.ext_vars {
        if var.code {
            check_code("extVars", var)?;
            stdlib
                .add_ext_code(&var.name, var.value.as_str())
                .map_err(|e| bad_code("extVars", var, &e, job.max_stack))?;
        } else {
            stdlib.add_ext_str(var.name.as_str().into(), var.value.as_str().into());
        }
    }
    let mut tlas = GcHashMap::new();
    for var in &job.jsonnet.tlas {
        let arg = if var.code {
            check_code("tlas", var)?;
            let source = Source::new_virtual(
                format!("<tla:{}>", var.name).into(),
                var.value.as_str().into(),
            );
            let parsed = jparser::parse(
                &var.value,
                &ParserSettings {
                    source: source.clone(),
                },
            )
            .map_err(|error| {
                let error = ErrorKind::ImportSyntaxError {
                    path: source,
                    error: Box::new(error),
                };
                bad_code("tlas", var, &error.into(), job.max_stack)
            })?;
            TlaArg::Code(parsed)
        } else {
            TlaArg::String(var.value.as_str().into())
        };
        tlas.insert(IStr::from(var.name.as_str()), arg);
    }
    let mut builder = State::builder();
    builder
        .context_initializer(stdlib)
        .import_resolver(RepoImporter {
            root: job.root.clone(),
            search: job.search.clone(),
            code_names: std::sync::Mutex::new(std::collections::HashSet::new()),
        });
    Ok((builder.build(), tlas))
}

fn bad_code(
    field: &str,
    var: &JsonnetVar,
    error: &jrsonnet_evaluator::Error,
    max_stack: usize,
) -> JsonnetError {
    JsonnetError::Options {
        message: format!(
            "spec.source.directory.jsonnet.{field} {:?} has code: true but its value is not valid Jsonnet: {}; fix it, or set code: false to pass it as a string",
            var.name,
            describe(error, max_stack)
        ),
    }
}

/// Code in an external variable or top-level argument, checked like files.
fn check_code(field: &str, var: &JsonnetVar) -> Result<(), JsonnetError> {
    check_nesting(&var.value).map_err(|depth| JsonnetError::Options {
        message: format!(
            "spec.source.directory.jsonnet.{field} {:?} nests about {depth} levels deep, over the limit of {MAX_NESTING}; simplify it",
            var.name
        ),
    })
}

/// The deepest nesting of code Plumb gives the parser (as estimated by
/// [`nesting`]). jrsonnet's parser, and its evaluator for everything but
/// calls, recurse once per level on the thread's stack, and an overflow
/// aborts the whole process: deeply nested objects overflow
/// [`STACK_SIZE`] somewhere past 10,000 levels in a debug build. Hand-written
/// and generated Jsonnet stays far below this.
const MAX_NESTING: usize = 2000;

/// `Err(estimate)` when `code` nests deeper than [`MAX_NESTING`].
fn check_nesting(code: &str) -> Result<(), usize> {
    match nesting(code) {
        depth if depth > MAX_NESTING => Err(depth),
        _ => Ok(()),
    }
}

/// An estimate, from above, of how deeply the parser and the evaluator
/// recurse on `code`, from its tokens alone (strings and comments skipped).
///
/// Each bracket opens a level, and also counts one in the level around it
/// (calls and indexes chain that way). Within a level, every operator,
/// `if`, `else` and `function` counts one, and so do `local` and `assert`,
/// whose body is the rest of the expression. A comma ends an element, so it
/// clears its level; `;` ends a binding's value, so it clears all but the
/// `local`s and `assert`s. The estimate is the deepest sum over the open
/// levels, each level counting one itself.
fn nesting(code: &str) -> usize {
    /// Per open level: `local`/`assert` seen, and other nesting tokens.
    #[derive(Default)]
    struct Level {
        bindings: usize,
        chain: usize,
    }
    let bytes = code.as_bytes();
    let mut levels = vec![Level::default()];
    // Σ over `levels` of 1 + bindings + chain.
    let mut total = 1usize;
    let mut deepest = total;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let last = levels
            .last_mut()
            .expect("the outermost level is never closed");
        match bytes[i] {
            b'"' | b'\'' => i = skip_string(bytes, i + 1, bytes[i]),
            b'@' if matches!(rest.get(1), Some(b'"' | b'\'')) => {
                i = skip_verbatim(bytes, i + 2, rest[1]);
            }
            b'|' if rest.starts_with(b"|||") => i = skip_past(bytes, i + 3, b"|||"),
            b'/' if rest.starts_with(b"/*") => i = skip_past(bytes, i + 2, b"*/"),
            b'/' if rest.starts_with(b"//") => i = skip_past(bytes, i + 2, b"\n"),
            b'#' => i = skip_past(bytes, i + 1, b"\n"),
            b'(' | b'[' | b'{' => {
                last.chain += 1;
                levels.push(Level::default());
                total += 2;
                i += 1;
            }
            b')' | b']' | b'}' => {
                if levels.len() > 1 {
                    let level = levels.pop().expect("more than one level");
                    total -= 1 + level.bindings + level.chain;
                }
                i += 1;
            }
            b',' => {
                total -= last.bindings + last.chain;
                *last = Level::default();
                i += 1;
            }
            b';' => {
                total -= last.chain;
                last.chain = 0;
                i += 1;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b'&' | b'|' | b'^'
            | b'~' => {
                // A comment or a text block may follow an operator at once.
                let run = (0..rest.len())
                    .take_while(|&j| {
                        let tail = &rest[j..];
                        b"+-*/%<>=!&|^~".contains(&tail[0])
                            && !(j > 0
                                && (tail.starts_with(b"//")
                                    || tail.starts_with(b"/*")
                                    || tail.starts_with(b"|||")))
                    })
                    .count();
                // A lone `=` binds a local or a parameter; it does not nest.
                if &rest[..run] != b"=" {
                    last.chain += 1;
                    total += 1;
                }
                i += run;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let word_len = rest
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                match &rest[..word_len] {
                    b"local" | b"assert" => {
                        last.bindings += 1;
                        total += 1;
                    }
                    b"if" | b"else" | b"function" => {
                        last.chain += 1;
                        total += 1;
                    }
                    _ => {}
                }
                i += word_len;
            }
            _ => i += 1,
        }
        deepest = deepest.max(total);
    }
    deepest
}

/// The index after the string that starts at `i` (just after its opening
/// `quote`), escapes skipped.
fn skip_string(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the verbatim string (`@'...'`) that starts at `i`, where
/// a doubled quote stands for one.
fn skip_verbatim(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The index after the next `end` from `i`, or the end of the input.
fn skip_past(bytes: &[u8], i: usize, end: &[u8]) -> usize {
    bytes[i.min(bytes.len())..]
        .windows(end.len())
        .position(|w| w == end)
        .map_or(bytes.len(), |at| i + at + end.len())
}

/// Where `std.trace` output goes: the log, not the controller's stderr.
struct LogTrace {
    file: String,
}

impl jrsonnet_stdlib::TracePrinter for LogTrace {
    fn print_trace(&self, loc: CallLocation, value: IStr) {
        let at = loc
            .0
            .map(|span| format!(" at {}", location(span)))
            .unwrap_or_default();
        tracing::debug!(file = %self.file, "jsonnet std.trace{at}: {value}");
    }
}

/// `path:line:column` of the start of a span.
fn location(span: &jparser::Span) -> String {
    let [start] = span.0.map_source_locations(&[span.1]);
    format!("{}:{}:{}", span.0.source_path(), start.line, start.column)
}

/// Frames of the stack trace shown in an error: the innermost, which say
/// where it happened, not the whole way there.
const TRACE_FRAMES: usize = 4;

/// A one-line message for an evaluator error: what went wrong, in which
/// field of the output, where in the code, and what to do.
fn describe(error: &jrsonnet_evaluator::Error, max_stack: usize) -> String {
    let kind = error.error();
    let frames = &error.trace().0;
    let (what, hint) = match kind {
        ErrorKind::ImportSyntaxError { path, error } => (
            format!(
                "{kind} at {}:{}:{}",
                path.source_path(),
                error.location.line,
                error.location.column
            ),
            Some("fix the syntax there"),
        ),
        ErrorKind::StackOverflow => (
            format!("stack overflow: calls nest deeper than {max_stack}"),
            Some("look for a recursion that never ends"),
        ),
        // The importer's own messages already say what to do.
        ErrorKind::ImportCallbackError(text) => (text.clone(), None),
        ErrorKind::FunctionParameterNotBoundInCall(..)
            if frames.iter().any(|f| f.desc == "during TLA call") =>
        {
            (
                kind.to_string(),
                Some(
                    "the file is a function: give its parameters in spec.source.directory.jsonnet.tlas",
                ),
            )
        }
        ErrorKind::UndefinedExternalVariable(_) => (
            kind.to_string(),
            Some("define it in spec.source.directory.jsonnet.extVars"),
        ),
        _ => (kind.to_string(), None),
    };
    let mut message = what.replace('\n', "; ");

    // Manifestation frames have no location but name the output's fields.
    let mut field = String::new();
    for frame in frames.iter().rev() {
        let desc = frame.desc.as_str();
        if let Some(name) = desc
            .strip_prefix("field <")
            .and_then(|d| d.strip_suffix("> manifestification"))
        {
            field.push('.');
            field.push_str(name);
        } else if let Some(index) = desc
            .strip_prefix("elem <")
            .and_then(|d| d.strip_suffix("> manifestification"))
        {
            field.push_str(&format!("[{index}]"));
        }
    }
    if !field.is_empty() {
        message.push_str(&format!(" (in field {field})"));
    }

    let mut shown: Vec<String> = Vec::new();
    for frame in frames {
        let Some(span) = &frame.location else {
            continue;
        };
        let entry = format!("{} ({})", location(span), frame.desc);
        if shown.last() != Some(&entry) {
            shown.push(entry);
        }
        if shown.len() == TRACE_FRAMES {
            break;
        }
    }
    if !shown.is_empty() {
        message.push_str(" at ");
        message.push_str(&shown.join(", from "));
    }
    if let Some(hint) = hint {
        message.push_str("; ");
        message.push_str(hint);
    }
    message
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Files: selection, and imports confined to the repository.

/// The selected `.jsonnet` files under the application folder, in path
/// order. Like Argo CD's walk, sub-folders are entered only when recursing
/// and symbolic links to folders are not followed; a selected file that is a
/// symbolic link must point at a regular file inside the repository.
fn select_files(
    root: &Path,
    app: &str,
    filter: &FileFilter,
    recurse: bool,
) -> Result<Vec<Selected>, JsonnetError> {
    let mut selected = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(folder) = pending.pop() {
        let dir = root.join(join_repo(app, &folder));
        let read_error = |e: io::Error| JsonnetError::Read {
            path: if folder.is_empty() {
                ".".into()
            } else {
                folder.clone()
            },
            message: e.to_string(),
        };
        for entry in std::fs::read_dir(&dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue; // Not UTF-8: no glob or manifest name can match it.
            };
            let path = join_repo(&folder, &name);
            let kind = entry.file_type().map_err(read_error)?;
            if kind.is_dir() {
                if recurse {
                    pending.push(path);
                }
                continue;
            }
            if !filter.selects_jsonnet(&path) {
                continue;
            }
            let real = match entry.path().canonicalize() {
                Ok(real) => real,
                // A dangling symbolic link: nothing to evaluate.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(JsonnetError::Read {
                        path,
                        message: e.to_string(),
                    });
                }
            };
            if !real.starts_with(root) {
                return Err(JsonnetError::Read {
                    path,
                    message: "it is a symbolic link to a file outside the repository; Plumb only reads files inside it".into(),
                });
            }
            if real.is_file() {
                selected.push(Selected { path, real });
            }
        }
    }
    selected.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(selected)
}

/// A repository-relative folder (an application path or a library folder)
/// checked to stay inside the repository, lexically and through symbolic
/// links, normalized (`""` for the root). A folder that does not exist is
/// accepted (nothing is found in it). A leading `/` means the repository
/// root, as in Argo CD.
fn repo_folder(root: &Path, path: &str) -> Result<String, &'static str> {
    const OUTSIDE: &str = "leaves the repository; it must be a folder inside it";
    let folder = normalize("", path.trim_start_matches('/')).ok_or(OUTSIDE)?;
    match root.join(&folder).canonicalize() {
        Ok(real) if !real.starts_with(root) => Err(OUTSIDE),
        Ok(real) if !real.is_dir() => Err("is not a folder"),
        _ => Ok(folder),
    }
}

/// `base/relative`, `/`-separated, with `.` and `..` resolved lexically (as
/// go-jsonnet joins import paths); `None` when `..` climbs above the root.
fn normalize(base: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(relative.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

fn join_repo(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        folder.to_string()
    } else {
        format!("{folder}/{name}")
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// A file of the repository, as the evaluator knows it: shown (in traces,
/// errors and `std.thisFile`) by its repository-relative path, so nothing
/// about the checkout's location leaks into the output or the messages.
#[derive(Debug, Hash, PartialEq, Eq)]
struct RepoFile {
    /// Repository-relative, as imported (before symbolic links).
    path: String,
    /// The file itself: canonical, inside the root.
    real: PathBuf,
}

impl Trace for RepoFile {
    fn is_type_tracked() -> bool {
        false
    }
}

impl fmt::Display for RepoFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl SourcePathT for RepoFile {
    fn is_default(&self) -> bool {
        false
    }
    // No host path: the evaluator then shows the `Display` form.
    fn path(&self) -> Option<&Path> {
        None
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn dyn_hash(&self, mut hasher: &mut dyn Hasher) {
        self.hash(&mut hasher);
    }
    fn dyn_eq(&self, other: &dyn SourcePathT) -> bool {
        other.as_any().downcast_ref::<RepoFile>() == Some(self)
    }
    fn dyn_debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The import resolver: go-jsonnet's search order, confined to the
/// repository.
struct RepoImporter {
    /// The canonical repository root.
    root: PathBuf,
    /// Folders searched after the importing file's, repository-relative.
    search: Vec<String>,
    /// File names that code loaded so far imports with `import` (not
    /// `importstr`): such a file is code whatever its name, and is checked.
    code_names: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The file names a piece of Jsonnet imports as code: the last component of
/// each string literal after an `import` keyword that is not `importstr`
/// or `importbin`. Jsonnet only allows literal import paths, so this finds
/// every one (and perhaps a few in comments or strings, which only means
/// more checking).
fn code_imports(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("import") {
        let after = &rest[at + "import".len()..];
        rest = after;
        if after.starts_with("str") || after.starts_with("bin") {
            continue;
        }
        let after = after.trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        if let Some(end) = after[1..].find(quote) {
            let literal = &after[1..=end];
            let name = literal.rsplit('/').next().unwrap_or(literal);
            names.push(name.to_string());
        }
    }
    names
}

impl Trace for RepoImporter {
    fn is_type_tracked() -> bool {
        false
    }
}

fn import_error(message: String) -> jrsonnet_evaluator::Error {
    ErrorKind::ImportCallbackError(message).into()
}

impl RepoImporter {
    /// The file at `path` (repository-relative, normalized), if there is one.
    fn find(
        &self,
        path: &str,
        import: &str,
        from: &SourcePath,
    ) -> jrsonnet_evaluator::Result<Option<RepoFile>> {
        let real = match self.root.join(path).canonicalize() {
            Ok(real) => real,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(import_error(format!(
                    "import {import:?} from {from}: cannot read {path}: {e}"
                )));
            }
        };
        if !real.starts_with(&self.root) {
            return Err(import_error(format!(
                "import {import:?} from {from} is refused: {path} is a symbolic link to a file outside the repository, and Plumb only reads files inside it"
            )));
        }
        if !real.is_file() {
            return Err(import_error(format!(
                "import {import:?} from {from}: {path} is not a regular file"
            )));
        }
        Ok(Some(RepoFile {
            path: path.to_string(),
            real,
        }))
    }
}

impl ImportResolver for RepoImporter {
    fn resolve_from(
        &self,
        from: &SourcePath,
        path: &str,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        if path.starts_with('/') || Path::new(path).is_absolute() {
            return Err(import_error(format!(
                "import {path:?} from {from} is refused: it is an absolute path; import files of the repository by a path relative to the importing file or to a library folder (spec.source.directory.jsonnet.libs)"
            )));
        }
        // Code of top-level arguments and external variables has no folder
        // of its own: only the library path applies.
        let here = from.downcast_ref::<RepoFile>().map(|f| parent(&f.path));
        for folder in here
            .iter()
            .copied()
            .chain(self.search.iter().map(String::as_str))
        {
            let Some(candidate) = normalize(folder, path) else {
                return Err(import_error(format!(
                    "import {path:?} from {from} is refused: it leaves the repository, and Plumb only reads files inside it"
                )));
            };
            if let Some(file) = self.find(&candidate, path, from)? {
                return Ok(SourcePath::new(file));
            }
        }
        let mut looked: Vec<String> = Vec::new();
        for folder in here
            .iter()
            .copied()
            .chain(self.search.iter().map(String::as_str))
        {
            let folder = show_folder(folder);
            if !looked.contains(&folder) {
                looked.push(folder);
            }
        }
        Err(import_error(format!(
            "cannot find import {path:?} from {from} (looked in {}); check the path, or add its folder to spec.source.directory.jsonnet.libs",
            looked.join(", ")
        )))
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        let file = resolved.downcast_ref::<RepoFile>().ok_or_else(|| {
            import_error(format!("cannot load {resolved}: not a repository file"))
        })?;
        let data = std::fs::read(&file.real)
            .map_err(|e| import_error(format!("cannot read {}: {e}", file.path)))?;
        // Only code is parsed; `importstr` of any text must stay possible.
        // The loader cannot tell `import` from `importstr`, so it goes by
        // the name: Jsonnet and JSON files, and any file that code loaded
        // before imports with `import`.
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        let imported_as_code = self
            .code_names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(name);
        if imported_as_code
            || [".jsonnet", ".libsonnet", ".json"]
                .iter()
                .any(|ext| file.path.ends_with(ext))
        {
            let text = String::from_utf8_lossy(&data);
            self.code_names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(code_imports(&text));
            check_nesting(&text).map_err(|depth| {
                import_error(format!(
                    "{} nests about {depth} levels deep (brackets, operators, locals, conditions), over the limit of {MAX_NESTING}: Plumb refuses it rather than overflow its stack; split it into smaller expressions",
                    file.path
                ))
            })?;
        }
        Ok(data)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn show_folder(folder: &str) -> String {
    if folder.is_empty() {
        "the repository root".into()
    } else {
        format!("{folder}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A repository checkout at `<tmp>/repo`, with room beside it for files
    /// that must stay out of reach.
    struct Repo {
        dir: tempfile::TempDir,
    }

    impl Repo {
        fn new() -> Repo {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::create_dir(dir.path().join("repo")).expect("repo dir");
            Repo { dir }
        }

        fn root(&self) -> PathBuf {
            self.dir.path().join("repo")
        }

        /// Writes a file at `path`, relative to the repository root.
        fn write(&self, path: &str, text: &str) -> &Repo {
            self.write_at(&self.root().join(path), text);
            self
        }

        /// Writes a file outside the repository, beside it.
        fn write_outside(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            self.write_at(&path, text);
            path
        }

        fn write_at(&self, path: &Path, text: &str) {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }

        fn eval(
            &self,
            app: &str,
            options: &DirectorySource,
        ) -> Result<Vec<JsonnetOutput>, JsonnetError> {
            evaluate(&self.root(), app, options, &limits())
        }
    }

    fn limits() -> JsonnetLimits {
        JsonnetLimits {
            timeout: Duration::from_secs(60),
            max_output_bytes: 1 << 20,
            max_stack: 500,
            // Only the timeout test leaves threads behind; others must not
            // trip over it.
            max_abandoned: 100,
        }
    }

    fn plain() -> DirectorySource {
        DirectorySource::default()
    }

    fn with(jsonnet: JsonnetSource) -> DirectorySource {
        DirectorySource {
            jsonnet: Some(jsonnet),
            ..Default::default()
        }
    }

    fn string(name: &str, value: &str) -> JsonnetVar {
        JsonnetVar {
            name: name.into(),
            value: value.into(),
            code: false,
        }
    }

    fn code(name: &str, value: &str) -> JsonnetVar {
        JsonnetVar {
            name: name.into(),
            value: value.into(),
            code: true,
        }
    }

    fn cm(name: &str) -> String {
        format!("{{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {{ name: '{name}' }} }}")
    }

    fn origins(outputs: &[JsonnetOutput]) -> Vec<&str> {
        outputs.iter().map(|o| o.origin.as_str()).collect()
    }

    fn names(outputs: &[JsonnetOutput]) -> Vec<&str> {
        outputs
            .iter()
            .map(|o| o.object["metadata"]["name"].as_str().expect("a name"))
            .collect()
    }

    fn message(error: &JsonnetError) -> String {
        error.to_string()
    }

    #[test]
    fn jsonnet_object_gives_one_manifest_and_an_array_one_per_item() {
        let repo = Repo::new();
        repo.write("app/one.jsonnet", &cm("one")).write(
            "app/many.jsonnet",
            &format!("[{}, null, {}]", cm("a"), cm("b")),
        );
        let out = repo.eval("app", &plain()).expect("evaluates");
        assert_eq!(
            origins(&out),
            ["many.jsonnet#0", "many.jsonnet#1", "one.jsonnet#0"]
        );
        assert_eq!(names(&out), ["a", "b", "one"]);
        assert_eq!(
            out[2].object,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})
        );
    }

    #[test]
    fn jsonnet_null_and_empty_array_give_nothing() {
        let repo = Repo::new();
        repo.write("null.jsonnet", "null")
            .write("empty.jsonnet", "[]");
        assert_eq!(repo.eval("", &plain()).expect("evaluates"), []);
        assert_eq!(Repo::new().eval("", &plain()).expect("no files"), []);
    }

    #[test]
    fn jsonnet_numbers_stay_integers() {
        let repo = Repo::new();
        repo.write(
            "d.jsonnet",
            "{ kind: 'X', replicas: 1 + 2, ratio: 0.5, big: 1e3 }",
        );
        let out = repo.eval("", &plain()).expect("evaluates");
        assert_eq!(
            out[0].object,
            json!({"big": 1000, "kind": "X", "ratio": 0.5, "replicas": 3})
        );
    }

    #[test]
    fn jsonnet_tlas_are_passed_to_a_top_level_function_as_strings_or_code() {
        let repo = Repo::new();
        repo.write(
            "f.jsonnet",
            "function(name, replicas=1, labels={}) { kind: 'X', metadata: { name: name, labels: labels }, replicas: replicas }",
        );
        let options = with(JsonnetSource {
            tlas: vec![
                string("name", "web"),
                code("replicas", "1 + 2"),
                code("labels", "{ app: 'web' }"),
            ],
            ..Default::default()
        });
        let out = repo.eval("", &options).expect("evaluates");
        assert_eq!(
            out[0].object,
            json!({"kind": "X", "metadata": {"labels": {"app": "web"}, "name": "web"}, "replicas": 3})
        );
        let text = message(&repo.eval("", &plain()).expect_err("no name"));
        assert!(
            text.contains("function argument is not passed: name")
                && text.ends_with("give its parameters in spec.source.directory.jsonnet.tlas"),
            "{text}"
        );
    }

    #[test]
    fn jsonnet_ext_vars_are_read_with_std_ext_var_as_strings_or_code() {
        let repo = Repo::new();
        repo.write(
            "e.jsonnet",
            "{ kind: 'X', env: std.extVar('env'), size: std.extVar('size') * 2 }",
        );
        let options = with(JsonnetSource {
            ext_vars: vec![string("env", "prod"), code("size", "std.length('abc')")],
            ..Default::default()
        });
        let out = repo.eval("", &options).expect("evaluates");
        assert_eq!(
            out[0].object,
            json!({"env": "prod", "kind": "X", "size": 6})
        );
    }

    #[test]
    fn jsonnet_code_that_does_not_parse_names_the_variable() {
        let repo = Repo::new();
        repo.write("e.jsonnet", &cm("e"));
        let options = with(JsonnetSource {
            tlas: vec![code("broken", "{ a: ")],
            ..Default::default()
        });
        let error = repo.eval("", &options).expect_err("bad code");
        assert!(matches!(error, JsonnetError::Options { .. }), "{error:?}");
        let text = message(&error);
        assert!(
            text.contains("tlas \"broken\"") && text.contains("syntax error"),
            "{text}"
        );
    }

    #[test]
    fn jsonnet_imports_resolve_from_the_importing_file_then_libs_then_the_app_folder() {
        let repo = Repo::new();
        repo.write(
            "apps/web/main.jsonnet",
            "local sub = import 'parts/sub.libsonnet';\n\
             local k = import 'k.libsonnet';\n\
             local both = import 'both.libsonnet';\n\
             { kind: 'X', metadata: { name: sub.name }, k: k.name, both: both, text: importstr 'parts/note.txt' }",
        )
        // Relative to the importing file (apps/web/parts/), even from a library.
        .write("apps/web/parts/sub.libsonnet", "{ name: (import 'name.libsonnet') }")
        .write("apps/web/parts/name.libsonnet", "'from-parts'")
        .write("apps/web/parts/note.txt", "hello")
        .write("vendor/k.libsonnet", "{ name: (import 'inner.libsonnet').n }")
        .write("vendor/inner.libsonnet", "{ n: 'from-vendor' }")
        // In two libs: the last one listed wins, as with go-jsonnet.
        .write("vendor/both.libsonnet", "'first'")
        .write("extra/both.libsonnet", "'last'");
        let options = with(JsonnetSource {
            libs: vec!["vendor".into(), "/extra".into()],
            ..Default::default()
        });
        let out = repo.eval("apps/web", &options).expect("evaluates");
        assert_eq!(
            out[0].object,
            json!({"both": "last", "k": "from-vendor", "kind": "X", "metadata": {"name": "from-parts"}, "text": "hello"})
        );
    }

    #[test]
    fn jsonnet_library_path_includes_the_app_folder() {
        let repo = Repo::new();
        repo.write("app/sub/main.jsonnet", "import 'shared.libsonnet'")
            .write("app/shared.libsonnet", &cm("shared"));
        let options = DirectorySource {
            recurse: true,
            ..Default::default()
        };
        let out = repo.eval("app", &options).expect("evaluates");
        assert_eq!(origins(&out), ["sub/main.jsonnet#0"]);
    }

    #[test]
    fn jsonnet_import_not_found_says_where_it_looked() {
        let repo = Repo::new();
        repo.write("app/main.jsonnet", "import 'missing.libsonnet'");
        let options = with(JsonnetSource {
            libs: vec!["vendor".into()],
            ..Default::default()
        });
        let text = message(&repo.eval("app", &options).expect_err("missing"));
        assert!(
            text.contains("cannot find import \"missing.libsonnet\" from app/main.jsonnet")
                && text.contains("(looked in app/, vendor/)"),
            "{text}"
        );
    }

    #[test]
    fn jsonnet_import_leaving_the_repository_is_refused() {
        let repo = Repo::new();
        let outside = repo.write_outside("secret.libsonnet", "'SENTINEL'");
        let outside = outside.to_str().expect("utf-8 path");
        for (import, what) in [
            (
                "import '../../secret.libsonnet'".to_string(),
                "leaves the repository",
            ),
            (format!("importstr '{outside}'"), "absolute path"),
            (
                format!("importbin '{}{outside}'", "../".repeat(40)),
                "leaves the repository",
            ),
        ] {
            repo.write(
                "app/main.jsonnet",
                &format!("{{ kind: 'X', leak: {import} }}"),
            );
            let error = repo.eval("app", &plain()).expect_err("refused");
            let text = message(&error);
            assert!(matches!(error, JsonnetError::Evaluate { .. }), "{error:?}");
            assert!(text.contains("is refused") && text.contains(what), "{text}");
            assert!(!text.contains("SENTINEL"), "{text}");
        }
    }

    #[test]
    fn jsonnet_code_in_tlas_and_ext_vars_cannot_import_outside_either() {
        let repo = Repo::new();
        let outside = repo.write_outside("secret.txt", "SENTINEL");
        let leak = format!("importstr '{}'", outside.display());
        repo.write(
            "main.jsonnet",
            "function(leak='') { kind: 'X', a: leak, b: std.extVar('leak') }",
        );
        let options = with(JsonnetSource {
            tlas: vec![code("leak", &leak)],
            ext_vars: vec![code("leak", "importstr '../secret.txt'")],
            ..Default::default()
        });
        let text = message(&repo.eval("", &options).expect_err("refused"));
        assert!(
            text.contains("is refused") && !text.contains("SENTINEL"),
            "{text}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn jsonnet_symlink_leaving_the_repository_is_refused() {
        use std::os::unix::fs::symlink;
        let repo = Repo::new();
        let outside = repo.write_outside("outside/secret.libsonnet", "'SENTINEL'");
        repo.write(
            "app/main.jsonnet",
            "{ kind: 'X', leak: import 'link.libsonnet' }",
        );
        symlink(&outside, repo.root().join("app/link.libsonnet")).expect("symlink");
        let text = message(&repo.eval("app", &plain()).expect_err("refused"));
        assert!(
            text.contains("import \"link.libsonnet\" from app/main.jsonnet is refused")
                && text.contains("symbolic link")
                && !text.contains("SENTINEL"),
            "{text}"
        );

        // A folder on the way that is a link out.
        symlink(
            outside.parent().expect("folder"),
            repo.root().join("app/linked"),
        )
        .expect("symlink");
        repo.write(
            "app/main.jsonnet",
            "{ kind: 'X', leak: import 'linked/secret.libsonnet' }",
        );
        let text = message(&repo.eval("app", &plain()).expect_err("refused"));
        assert!(
            text.contains("is refused") && !text.contains("SENTINEL"),
            "{text}"
        );

        // A selected file that is a link out.
        std::fs::remove_file(repo.root().join("app/main.jsonnet")).expect("rm");
        let evil = repo.write_outside("evil.jsonnet", &cm("evil"));
        symlink(&evil, repo.root().join("app/evil.jsonnet")).expect("symlink");
        let error = repo.eval("app", &plain()).expect_err("refused");
        assert!(
            matches!(&error, JsonnetError::Read { path, .. } if path == "evil.jsonnet"),
            "{error:?}"
        );

        // Links inside the repository are fine.
        std::fs::remove_file(repo.root().join("app/evil.jsonnet")).expect("rm");
        repo.write("shared/cm.libsonnet", &cm("shared"))
            .write("app/main.jsonnet", "import 'inside.libsonnet'");
        symlink(
            repo.root().join("shared/cm.libsonnet"),
            repo.root().join("app/inside.libsonnet"),
        )
        .expect("symlink");
        assert_eq!(
            names(&repo.eval("app", &plain()).expect("evaluates")),
            ["shared"]
        );
    }

    #[test]
    fn jsonnet_app_path_and_libs_outside_the_repository_are_refused() {
        let repo = Repo::new();
        repo.write("app/main.jsonnet", &cm("a"));
        let error = repo.eval("../x", &plain()).expect_err("outside");
        assert!(matches!(error, JsonnetError::Options { .. }), "{error:?}");
        let options = with(JsonnetSource {
            libs: vec!["vendor/../../..".into()],
            ..Default::default()
        });
        let text = message(&repo.eval("app", &options).expect_err("outside"));
        assert!(
            text.contains("libs entry \"vendor/../../..\" leaves the repository"),
            "{text}"
        );
    }

    #[test]
    fn jsonnet_syntax_error_names_the_file_and_line() {
        let repo = Repo::new();
        repo.write("app/good.jsonnet", &cm("good"))
            .write("app/bad.jsonnet", "{\n  kind: 'X',\n  name: ,\n}");
        let error = repo.eval("app", &plain()).expect_err("syntax");
        assert!(
            matches!(&error, JsonnetError::Evaluate { file, .. } if file == "bad.jsonnet"),
            "{error:?}"
        );
        let text = message(&error);
        assert!(
            text.starts_with("jsonnet bad.jsonnet: syntax error")
                && text.contains("app/bad.jsonnet:3:")
                && text.contains("fix the syntax"),
            "{text}"
        );
    }

    #[test]
    fn jsonnet_runtime_error_gives_its_message_and_line() {
        let repo = Repo::new();
        repo.write(
            "lib.libsonnet",
            "{ f(x):: if x > 1 then error 'boom' else x }",
        )
        .write(
            "main.jsonnet",
            "local lib = import 'lib.libsonnet';\n{ kind: 'X', v: lib.f(2) }",
        );
        let text = message(&repo.eval("", &plain()).expect_err("boom"));
        assert!(
            text.starts_with("jsonnet main.jsonnet: runtime error: boom at lib.libsonnet:1:")
                && text.contains("main.jsonnet:2:"),
            "{text}"
        );
    }

    #[test]
    fn jsonnet_top_level_non_object_is_an_error_naming_the_file() {
        let repo = Repo::new();
        repo.write("s.jsonnet", "'just a string'");
        let error = repo.eval("", &plain()).expect_err("string");
        assert_eq!(
            error,
            JsonnetError::Output {
                file: "s.jsonnet".into(),
                message: "it evaluates to a string; a Jsonnet file must give a Kubernetes object or an array of them".into(),
            }
        );
        let repo = Repo::new();
        repo.write("n.jsonnet", &format!("[{}, [{}]]", cm("a"), cm("b")));
        let text = message(&repo.eval("", &plain()).expect_err("nested"));
        assert!(
            text.starts_with("jsonnet n.jsonnet: item 1 of its array is an array"),
            "{text}"
        );
        let repo = Repo::new();
        repo.write("f.jsonnet", "{ kind: 'X', f(x):: x, g: function(x) x }");
        let text = message(&repo.eval("", &plain()).expect_err("function"));
        assert!(
            text.contains("tried to manifest function (in field .g)"),
            "{text}"
        );
    }

    #[test]
    fn jsonnet_infinite_recursion_is_an_error_not_a_crash() {
        let repo = Repo::new();
        repo.write(
            "r.jsonnet",
            "local f(x) = f(x + 1) + 1; { kind: 'X', v: f(0) }",
        );
        let text = message(&repo.eval("", &plain()).expect_err("overflow"));
        assert!(
            text.starts_with("jsonnet r.jsonnet: stack overflow: calls nest deeper than 500")
                && text.contains("r.jsonnet:1:"),
            "{text}"
        );
        // Deep but finite recursion works, as with go-jsonnet.
        let repo = Repo::new();
        repo.write(
            "d.jsonnet",
            "local f(n) = if n == 0 then 0 else 1 + f(n - 1); { kind: 'X', v: f(150) }",
        );
        assert_eq!(
            repo.eval("", &plain()).expect("evaluates")[0].object["v"],
            150
        );
    }

    #[test]
    fn jsonnet_past_the_time_limit_times_out_at_once() {
        let repo = Repo::new();
        repo.write("a.jsonnet", &cm("a")).write(
            "slow.jsonnet",
            "{ kind: 'X', v: std.foldl(function(acc, x) acc + x, std.range(1, 500000), 0) }",
        );
        let tight = JsonnetLimits {
            timeout: Duration::from_millis(100),
            max_abandoned: 100,
            ..limits()
        };
        let start = Instant::now();
        let error = evaluate(&repo.root(), "", &plain(), &tight).expect_err("too slow");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            error,
            JsonnetError::Timeout {
                file: "slow.jsonnet".into(),
                timeout: Duration::from_millis(100),
            }
        );
        // Its thread still runs: a new evaluation waits for it.
        let busy = JsonnetLimits {
            max_abandoned: 1,
            ..tight
        };
        let error = evaluate(&repo.root(), "", &plain(), &busy).expect_err("busy");
        assert!(
            matches!(error, JsonnetError::Busy { running } if running >= 1),
            "{error:?}"
        );
        assert!(error.is_spurious());
    }

    #[test]
    fn jsonnet_output_past_the_size_limit_is_an_error() {
        let repo = Repo::new();
        repo.write("a.jsonnet", &cm("a")).write(
            "b.jsonnet",
            "{ kind: 'X', data: std.join('', std.makeArray(2000, function(i) 'x')) }",
        );
        let small = JsonnetLimits {
            max_output_bytes: 1000,
            ..limits()
        };
        let error = evaluate(&repo.root(), "", &plain(), &small).expect_err("too large");
        assert_eq!(
            error,
            JsonnetError::TooLarge {
                file: "b.jsonnet".into(),
                limit: 1000,
            }
        );
    }

    #[test]
    fn jsonnet_recurse_include_and_exclude_select_files_as_for_yaml() {
        let repo = Repo::new();
        repo.write("app/top.jsonnet", &cm("top"))
            .write("app/sub/deep.jsonnet", &cm("deep"))
            .write("app/sub/skip.jsonnet", &cm("skip"))
            .write("app/other/x.jsonnet", &cm("x"))
            .write(
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\n",
            );
        assert_eq!(
            names(&repo.eval("app", &plain()).expect("evaluates")),
            ["top"]
        );
        let recurse = DirectorySource {
            recurse: true,
            ..Default::default()
        };
        assert_eq!(
            origins(&repo.eval("app", &recurse).expect("evaluates")),
            [
                "other/x.jsonnet#0",
                "sub/deep.jsonnet#0",
                "sub/skip.jsonnet#0",
                "top.jsonnet#0"
            ]
        );
        let filtered = DirectorySource {
            recurse: true,
            include: Some("{sub/*,top.jsonnet}".into()),
            exclude: Some("skip.jsonnet".into()),
            ..Default::default()
        };
        assert_eq!(
            names(&repo.eval("app", &filtered).expect("evaluates")),
            ["deep", "top"]
        );
        let bad = DirectorySource {
            include: Some("[".into()),
            ..Default::default()
        };
        let error = repo.eval("app", &bad).expect_err("bad glob");
        assert!(matches!(error, JsonnetError::Options { .. }), "{error:?}");
    }

    #[test]
    fn jsonnet_libsonnet_files_are_never_evaluated_on_their_own() {
        let repo = Repo::new();
        repo.write("lib.libsonnet", "error 'a library is not evaluated alone'")
            .write("util.libsonnet", "{ name: 'x' }")
            .write("main.jsonnet", &cm("main"));
        let everything = DirectorySource {
            include: Some("*".into()),
            ..Default::default()
        };
        assert_eq!(
            names(&repo.eval("", &everything).expect("evaluates")),
            ["main"]
        );
    }

    #[test]
    fn jsonnet_code_nested_too_deeply_is_refused_rather_than_crash() {
        // Without the check, this overflows the thread's stack, which aborts
        // the process.
        let deep = format!("{}1{}", "{ a: ".repeat(20_000), " }".repeat(20_000));
        let repo = Repo::new();
        repo.write("deep.jsonnet", &deep);
        let text = message(&repo.eval("", &plain()).expect_err("too deep"));
        assert!(
            text.starts_with("jsonnet deep.jsonnet: deep.jsonnet nests about 40001 levels deep")
                && text.contains("split it"),
            "{text}"
        );

        let repo = Repo::new();
        repo.write("lib/deep.libsonnet", &deep)
            .write("main.jsonnet", "import 'lib/deep.libsonnet'");
        let text = message(&repo.eval("", &plain()).expect_err("too deep"));
        assert!(text.contains("lib/deep.libsonnet nests about"), "{text}");

        let options = with(JsonnetSource {
            ext_vars: vec![code("deep", &deep)],
            ..Default::default()
        });
        let text = message(&repo.eval("", &options).expect_err("too deep"));
        assert!(text.contains("extVars \"deep\" nests about"), "{text}");
    }

    #[test]
    fn jsonnet_long_but_flat_code_and_imported_text_pass_the_nesting_check() {
        let repo = Repo::new();
        let locals: String = (0..1500)
            .map(|i| format!("local v{i} = {i} + 1;\n"))
            .collect();
        let list = format!("[{}]", vec!["[1 + 2 + 3]"; 5000].join(", "));
        repo.write(
            "many.jsonnet",
            &format!("{locals}{{ kind: 'X', n: std.length({list}) }}"),
        )
        // Text is not parsed: anything goes through importstr.
        .write("script.sh", &"(((( x=$((1+2+3)) ".repeat(5000))
        .write(
            "text.jsonnet",
            "{ kind: 'Y', s: std.length(importstr 'script.sh') }",
        );
        let out = repo.eval("", &plain()).expect("evaluates");
        assert_eq!(out[0].object, json!({"kind": "X", "n": 5000}));
        assert_eq!(out[1].object["kind"], "Y");
    }

    #[test]
    fn jsonnet_code_imported_under_any_name_is_checked_and_text_is_not() {
        let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
        let chain = vec!["1"; 50_000].join("+");
        let repo = Repo::new();
        repo.write("deep.txt", &deep)
            .write("chain.txt", &chain)
            .write("a.jsonnet", "{ kind: 'A', n: import 'deep.txt' }");
        let text = message(&repo.eval("", &plain()).expect_err("too deep"));
        assert!(text.contains("deep.txt nests about"), "{text}");
        let repo = Repo::new();
        repo.write("chain.txt", &chain)
            .write("b.jsonnet", "{ kind: 'B', n: import \"chain.txt\" }");
        let text = message(&repo.eval("", &plain()).expect_err("too deep"));
        assert!(text.contains("chain.txt nests about"), "{text}");
        // The same text through importstr is only text.
        let repo = Repo::new();
        repo.write("chain.txt", &chain).write(
            "c.jsonnet",
            "{ kind: 'C', n: std.length(importstr 'chain.txt') }",
        );
        let out = repo.eval("", &plain()).expect("evaluates");
        assert_eq!(out[0].object["n"], chain.len());
        assert_eq!(
            code_imports("import 'a/b.txt' + importstr 'c' + import\"d\""),
            ["b.txt", "d"]
        );
    }

    #[test]
    fn jsonnet_nesting_estimate_skips_strings_and_comments() {
        assert_eq!(nesting("1"), 1);
        assert_eq!(nesting("{ a: [1, 2] }"), 5);
        assert_eq!(nesting("{ a: 1 + 2 + 3 }"), 5);
        assert_eq!(nesting("local a = 1; local b = a + 1; b * 2"), 4);
        let quoted = r#"{ a: "((([[[", b: '}}}\'(((', c: @'(''(', d: |||
          ((((
        |||, // ((((
        # ((((
        /* (((( */ }"#;
        assert_eq!(nesting(quoted), 3);
        assert_eq!(nesting(&"[".repeat(10)), 21);
        assert_eq!(nesting("1 +// 1) (\n 2"), 2);
        assert_eq!(nesting("'a' +|||\n  ((\n|||"), 2);
    }

    #[test]
    fn jsonnet_this_file_is_repository_relative() {
        let repo = Repo::new();
        repo.write("apps/a/x.jsonnet", "{ kind: 'X', file: std.thisFile }");
        let out = repo.eval("apps/a", &plain()).expect("evaluates");
        assert_eq!(out[0].object["file"], "apps/a/x.jsonnet");
    }
}
