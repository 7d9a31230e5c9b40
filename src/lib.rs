//! mcwan: an offline compiler from multi-cluster SD-WAN declarations to per-cluster GitOps
//! directories. The pipeline is `load` → `check` → `plan` → `render` → `emit`; only `load`
//! and `emit` touch the filesystem. See ARCHITECTURE.md.

pub mod check;
pub mod cli;
pub mod diagnostic;
pub mod emit;
pub mod error;
pub mod fabric;
pub mod load;
pub mod model;
pub mod plan;
pub mod render;
pub mod report;
pub mod schema;
pub mod source;
pub mod spec;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;

use crate::cli::{Cli, Command, Input};
use crate::diagnostic::Diagnostics;
use crate::emit::{Provenance, Staging};
use crate::error::Error;
use crate::model::Model;
use crate::plan::Plan;
use crate::render::Renderer;
use crate::schema::Schemas;

/// Exit code for invalid declarations.
const EXIT_INVALID: u8 = 1;
/// Exit code for usage and I/O errors.
const EXIT_FATAL: u8 = 2;

/// Parses the command line and runs the command.
#[must_use]
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn execute(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Validate { input } => {
            Ok(validate(&input)?.map_or(ExitCode::from(EXIT_INVALID), |_| ExitCode::SUCCESS))
        }
        Command::Render {
            input,
            out,
            templates,
        } => {
            check_output_location(&input.dir, &out)?;
            let overrides = match &templates {
                Some(dir) => load::template_overrides(dir)?,
                None => Vec::new(),
            };
            let renderer = Renderer::new(&overrides)?;
            let Some(model) = validate(&input)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            render(&model, &renderer, &out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { kind } => {
            let schemas = Schemas::compile(schema::INPUT);
            let selected: Vec<_> = schemas
                .sources()
                .filter(|(k, _)| {
                    kind.as_deref()
                        .is_none_or(|wanted| k.eq_ignore_ascii_case(wanted))
                })
                .map(|(_, s)| s.clone())
                .collect();
            if selected.is_empty() {
                return Err(Error::Usage(format!(
                    "no input kind `{}`",
                    kind.unwrap_or_default()
                )));
            }
            let text = if selected.len() == 1 {
                serde_json::to_string_pretty(&selected[0])
            } else {
                serde_json::to_string_pretty(&selected)
            };
            print_stdout(&text.map_err(|e| Error::Internal(e.to_string()))?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads and checks the declarations, printing every diagnostic. `None` means invalid.
fn validate(input: &Input) -> Result<Option<Model>, Error> {
    let mut diagnostics = Diagnostics::default();
    let limits = load::Limits {
        max_file_bytes: input.max_file_bytes,
        ..load::Limits::default()
    };
    let sources = load::declarations(&input.dir, limits, &mut diagnostics)?;
    let schemas = Schemas::compile(schema::INPUT);
    let options = check::Options {
        resolve_conflicts: input.resolve_conflicts,
    };
    let model = check::check(&sources, &schemas, options, &mut diagnostics);
    let all = diagnostics.into_sorted();
    if let Err(error) = report::print(input.format, &sources, &all) {
        if error.kind() != io::ErrorKind::BrokenPipe {
            return Err(Error::io(Path::new("<output>"), error));
        }
    }
    Ok(model)
}

/// Renders every cluster in parallel into a staging directory, then swaps it in for OUT.
///
/// # Errors
/// When a template fails, or on I/O errors; OUT is then left as it was.
pub fn render(model: &Model, renderer: &Renderer, out: &Path) -> Result<(), Error> {
    let plan = Plan::new(model);
    let staging = Staging::begin(out)?;
    let flows = std::sync::Mutex::new(Vec::new());
    for_each_cluster(model.clusterset.clusters.len(), |c| {
        let cluster_plan = plan.cluster(c);
        staging.write(&renderer.cluster(model, c, &cluster_plan)?)?;
        let found = fabric::flows(model, c, &cluster_plan);
        flows.lock().map_err(|_| poisoned())?.extend(found);
        Ok(())
    })?;
    let flows = flows.into_inner().map_err(|_| poisoned())?;
    staging.write(&renderer.fabric(&fabric::classify(model, flows))?)?;
    let provenance = Provenance {
        generator: "mcwan".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        input_digest: model.input_digest.clone(),
        files: staging.written()?,
    };
    staging.commit(&provenance.file())
}

fn poisoned() -> Error {
    Error::Internal("a render thread panicked".into())
}

/// Runs `work` for every cluster index on all cores. Each worker holds one cluster's
/// output at a time. The error of the lowest failing cluster is returned, so that failures
/// are reported the same way on every run.
fn for_each_cluster(
    count: usize,
    work: impl Fn(usize) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(count.max(1));
    let mut errors: Vec<(usize, Error)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut errors = Vec::new();
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        if c >= count {
                            break errors;
                        }
                        if let Err(error) = work(c) {
                            errors.push((c, error));
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join().unwrap_or_else(|_| {
                    vec![(
                        usize::MAX,
                        Error::Internal("a render thread panicked".into()),
                    )]
                })
            })
            .collect()
    });
    errors.sort_by_key(|(c, _)| *c);
    errors
        .into_iter()
        .next()
        .map_or(Ok(()), |(_, error)| Err(error))
}

/// OUT may sit inside the declarations repository (that is the usual layout), but never
/// where mcwan reads declarations from, and never above or at the repository itself.
fn check_output_location(dir: &Path, out: &Path) -> Result<(), Error> {
    let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let out_abs = resolve(out)?;
    let refuse = |why: &str| {
        Err(Error::Usage(format!(
            "output directory `{}` {why}",
            out.display()
        )))
    };
    if dir.starts_with(&out_abs) {
        return refuse("contains the declarations; render would replace them");
    }
    for input in ["clusters", "policies", "clusterset.yaml", "clusterset.yml"] {
        if out_abs.starts_with(dir.join(input)) {
            return refuse(&format!(
                "is inside `{input}`, where mcwan reads declarations"
            ));
        }
    }
    Ok(())
}

/// An absolute path for `path`, resolving symbolic links in the part that exists.
fn resolve(path: &Path) -> Result<PathBuf, Error> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(Path::new("."), e))?
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return Ok(rest
                .iter()
                .rev()
                .fold(real, |acc: PathBuf, part| acc.join(part)));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(absolute),
        }
    }
}

fn print_stdout(text: &str) -> Result<(), Error> {
    use std::io::Write;
    match writeln!(io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Path::new("<stdout>"), e)),
        _ => Ok(()),
    }
}
