//! mcwan: an offline compiler from multi-cluster SD-WAN declarations to per-cluster GitOps
//! directories. The pipeline is `load` → `check` → `plan` → `render` → `emit`; only `load`
//! and `emit` touch the filesystem. See ARCHITECTURE.md.

pub mod check;
pub mod cli;
pub mod diagnostic;
pub mod diff;
pub mod edit;
pub mod emit;
pub mod error;
pub mod fabric;
pub mod generate;
pub mod load;
pub mod model;
pub mod plan;
pub mod render;
pub mod report;
pub mod schema;
pub mod source;
pub mod spec;
pub mod status;
pub mod summary;
pub mod value_diff;
pub mod verify;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use clap::Parser;

use crate::check::topology::FABRIC_DIRECTORY;
use crate::cli::{Cli, Command, Input};
use crate::diagnostic::Diagnostics;
use crate::diff::{Change, ChangeKind};
use crate::emit::{Existing, Provenance, Staging};
use crate::error::Error;
use crate::fabric::SiteFlows;
use crate::model::Model;
use crate::plan::Plan;
use crate::render::OutputFile;
use crate::render::Renderer;
use crate::schema::Schemas;

/// The review summary mcwan writes at the top of OUT.
pub const SUMMARY: &str = "SUMMARY.md";

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
            output,
            no_verify,
            lock_timeout,
        } => {
            check_output_location(&input.dir, &output.out)?;
            let Some((model, renderer)) = prepare(&input, &output)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            let lock_timeout = lock_timeout.map(std::time::Duration::from_secs);
            let report = render(&model, &renderer, &output.out, !no_verify, lock_timeout)?;
            if no_verify {
                eprintln!("warning: --no-verify: no flow was verified, and SUMMARY.md says so");
                return Ok(ExitCode::SUCCESS);
            }
            if report.problems() == 0 {
                return Ok(ExitCode::SUCCESS);
            }
            eprint!("{}", report.human_problems());
            eprintln!("error: {} declared flow(s) would not work; `{}` was left as it was (`mcwan render --no-verify` writes it anyway)", report.problems(), output.out.display());
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Command::Verify {
            out,
            declarations,
            format,
        } => verify_out(&out, declarations.as_deref(), format),
        Command::Check { input, output } => {
            let Some((model, renderer)) = prepare(&input, &output)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            let out = output.out;
            let changes = compare(&model, &renderer, &out)?;
            if changes.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            print_stdout(diff::unified(&changes).trim_end())?;
            let files: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
            eprintln!(
                "error: `{}` is out of date: {} file(s) differ from what `mcwan render` writes:\n  {}\nrun `mcwan render {} -o {}` and commit the result",
                out.display(),
                files.len(),
                files.join("\n  "),
                input.dir.display(),
                out.display()
            );
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Command::Diff { input, output } => {
            let Some((model, renderer)) = prepare(&input, &output)? else {
                return Ok(ExitCode::from(EXIT_FATAL));
            };
            let changes = compare(&model, &renderer, &output.out)?;
            if changes.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            print_stdout(&format!(
                "{}\n{}",
                diff::summary(&changes),
                diff::unified(&changes).trim_end()
            ))?;
            Ok(ExitCode::from(1))
        }
        Command::Status { service, input } => {
            let Some(model) = validate(&input)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            match status::describe(&model, &service) {
                Ok(text) => {
                    print_stdout(text.trim_end())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    Ok(ExitCode::from(EXIT_INVALID))
                }
            }
        }
        Command::Graph { input, dot } => {
            let Some(model) = validate(&input)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            let plan = Plan::new(&model);
            let edges = (0..model.clusterset.clusters.len())
                .flat_map(|c| summary::edges(&model, &SiteFlows::of(&model, c, &plan.cluster(c))))
                .collect();
            let text = if dot {
                summary::dot(&plan, &edges)
            } else {
                summary::mermaid(&plan, &edges)
            };
            print_stdout(text.trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { target, wan_policy } => run_verb(edit::Verb::Export, &target, wan_policy),
        Command::Unexport { target } => run_verb(edit::Verb::Unexport, &target, None),
        Command::Import { target } => run_verb(edit::Verb::Import, &target, None),
        Command::Unimport { target } => run_verb(edit::Verb::Unimport, &target, None),
        Command::Generate { out, shape } => {
            if std::fs::read_dir(&out).is_ok_and(|mut entries| entries.next().is_some()) {
                return Err(Error::Usage(format!(
                    "`{}` exists and is not empty",
                    out.display()
                )));
            }
            let writes: Vec<(String, Option<String>)> = generate::repository(shape)
                .into_iter()
                .map(|(path, text)| (path, Some(text)))
                .collect();
            emit::apply_edits(&out, &writes)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "mcwan", &mut script);
            print_stdout(String::from_utf8_lossy(&script).trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { kind } => {
            let schemas = Schemas::input();
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

/// Carries out an imperative verb: the repository must be valid before, and the edit is
/// written only if the repository is still valid after it.
fn run_verb(
    verb: edit::Verb,
    target: &cli::Target,
    wan_policy: Option<String>,
) -> Result<ExitCode, Error> {
    let input = &target.input;
    let Some((namespace, name)) = target.service.split_once('/') else {
        return Err(Error::Usage(format!(
            "`{}` is not NAMESPACE/NAME",
            target.service
        )));
    };
    let limits = input.limits();
    let files = load::read(&input.dir, limits)?;
    let Some((sources, model)) = checked(&files, input, limits)? else {
        eprintln!("error: the repository is invalid; fix it before changing it");
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let request = edit::Request {
        verb,
        namespace: namespace.to_string(),
        name: name.to_string(),
        cluster: target.cluster.clone(),
        wan_policy,
    };
    let (writes, message) = match edit::apply(&request, &files, &sources, &model) {
        Ok(done) => done,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let mut edited: Vec<load::InputFile> = files
        .into_iter()
        .filter(|f| !writes.iter().any(|(p, _)| *p == f.path))
        .collect();
    for (path, content) in &writes {
        if let Some(text) = content {
            edited.push(load::InputFile {
                path: path.clone(),
                content: load::Content::Text(text.clone()),
            });
        }
    }
    edited.sort_by(|a, b| a.path.cmp(&b.path));
    if checked(&edited, input, limits)?.is_none() {
        eprintln!("error: refusing the change: the repository would not validate");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    emit::apply_edits(&input.dir, &writes)?;
    eprintln!("{message}");
    Ok(ExitCode::SUCCESS)
}

/// Parses and checks in-memory files, printing diagnostics; `None` if invalid.
fn checked(
    files: &[load::InputFile],
    input: &Input,
    limits: load::Limits,
) -> Result<Option<(source::Sources, Model)>, Error> {
    let mut diagnostics = Diagnostics::default();
    let sources = load::parse(files, limits, &mut diagnostics);
    let options = check::Options {
        resolve_conflicts: input.resolve_conflicts,
    };
    let model = check::check(&sources, &Schemas::input(), options, &mut diagnostics);
    print_diagnostics(input.format, &sources, &diagnostics.into_sorted())?;
    Ok(model.map(|model| (sources, model)))
}

fn print_diagnostics(
    format: report::Format,
    sources: &source::Sources,
    all: &[diagnostic::Diagnostic],
) -> Result<(), Error> {
    match report::print(format, sources, all) {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::io(Path::new("<output>"), error))
        }
        _ => Ok(()),
    }
}

/// The renderer an output asks for and the checked model; `None` if the input is invalid.
/// Template overrides are compiled first, so a broken override fails before any input is read.
fn prepare(input: &Input, output: &cli::Output) -> Result<Option<(Model, Renderer)>, Error> {
    let overrides = match &output.templates {
        Some(dir) => load::template_overrides(dir)?,
        None => Vec::new(),
    };
    let renderer = Renderer::new(&overrides)?.with_layout(output.layout);
    Ok(validate(input)?.map(|model| (model, renderer)))
}

/// `mcwan verify OUT`: reads OUT's cluster directories and fabric, under the rules `check`
/// reads OUT by, and compares them with the recorded intent or the declarations.
fn verify_out(
    out: &Path,
    declarations: Option<&Path>,
    format: report::Format,
) -> Result<ExitCode, Error> {
    let intent = match declarations {
        Some(dir) => {
            let Some(model) = validate(&Input::defaults(dir.to_path_buf()))? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            verify::intent::Intent::of(&model)
        }
        None => emit::recorded_intent(out)?
            .map(verify::intent::Intent::indexed)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "`{}` records no intent (render it with this mcwan, or pass --declarations)",
                    out.display()
                ))
            })?,
    };
    let mut owns: BTreeSet<String> = intent.clusters.iter().map(|c| c.name.clone()).collect();
    owns.insert(FABRIC_DIRECTORY.to_string());
    let existing = Existing::open(out, &owns)?;
    // Each file holds one object, as render writes them.
    let parse = |path: &str| -> Result<Option<serde_json::Value>, Error> {
        let bytes = existing.read_regular(path, emit::MAX_OUT_FILE_BYTES)?;
        let text = String::from_utf8_lossy(&bytes);
        render::parse_yaml(&text)
            .map(Some)
            .map_err(|e| Error::Usage(format!("`{path}` in OUT is not YAML mcwan can read: {e}")))
    };
    // Render names each file `<kind>-<name>.yaml`: only the kinds the proxies read are read.
    let verified = |path: &str| {
        let file = path.rsplit('/').next().unwrap_or_default();
        is_yaml(path)
            && render::VERIFIED_KINDS
                .iter()
                .any(|k| file.starts_with(&format!("{}-", k.to_ascii_lowercase())))
    };
    let facts = Mutex::new(Vec::new());
    for_each_cluster(intent.clusters.len(), |c| {
        let name = &intent.clusters[c].name;
        let mut objects = Vec::new();
        for path in existing.files_below(name)?.iter().filter(|p| verified(p)) {
            objects.extend(parse(path)?);
        }
        objects.retain(|o| render::VERIFIED_KINDS.iter().any(|k| o["kind"] == *k));
        let cluster_facts = verify::facts::ClusterFacts::of(name, &objects, &intent);
        facts
            .lock()
            .map_err(|_| poisoned())?
            .push((c, cluster_facts));
        Ok(())
    })?;
    let mut fabric = verify::Fabric::default();
    for path in existing.files_below(FABRIC_DIRECTORY)? {
        if is_yaml(&path) {
            fabric.add(&parse(&path)?.unwrap_or_default());
        }
    }
    let report = reachability(
        &intent,
        facts.into_inner().map_err(|_| poisoned())?,
        &fabric,
    )?;
    let text = match format {
        report::Format::Human => report.human(),
        report::Format::Json => {
            let mut json = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::Internal(e.to_string()))?;
            json.push('\n');
            json
        }
        report::Format::Github => report.github(),
    };
    print_stdout(text.trim_end())?;
    Ok(if report.problems() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// Whether an OUT-relative path is a YAML file mcwan wrote (always lowercase `.yaml`).
fn is_yaml(path: &str) -> bool {
    Path::new(path).extension().is_some_and(|e| e == "yaml")
}

/// Loads and checks the declarations, printing every diagnostic. `None` means invalid.
fn validate(input: &Input) -> Result<Option<Model>, Error> {
    let limits = input.limits();
    Ok(checked(&load::read(&input.dir, limits)?, input, limits)?.map(|(_, model)| model))
}

/// Runs the whole pipeline on in-memory files, keeping nothing but the number of files a
/// render would write (0 for invalid input). For the fuzzer: any panic here is a bug.
///
/// # Errors
/// When rendering fails, which for valid input is a bug too.
pub fn compile(
    files: &[load::InputFile],
    limits: load::Limits,
    diagnostics: &mut Diagnostics,
) -> Result<usize, Error> {
    static SCHEMAS: std::sync::OnceLock<Schemas> = std::sync::OnceLock::new();
    static RENDERER: std::sync::OnceLock<Result<Renderer, String>> = std::sync::OnceLock::new();
    let sources = load::parse(files, limits, diagnostics);
    let schemas = SCHEMAS.get_or_init(Schemas::input);
    let Some(model) = check::check(&sources, schemas, check::Options::default(), diagnostics)
    else {
        return Ok(0);
    };
    let renderer = RENDERER
        .get_or_init(|| Renderer::new(&[]).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Internal(e.clone()))?;
    Ok(produce(&model, renderer, true, &|_, _: &[OutputFile]| Ok(()))?.files)
}

/// Renders every cluster in parallel into a staging directory, verifies the flows, then
/// swaps it in for OUT, waiting at most `lock_timeout` for another render of OUT. Returns the verification; OUT is replaced only when it found no
/// problem, or `verify` is false.
///
/// # Errors
/// When a template fails, or on I/O errors; OUT is then left as it was.
pub fn render(
    model: &Model,
    renderer: &Renderer,
    out: &Path,
    verify: bool,
    lock_timeout: Option<std::time::Duration>,
) -> Result<verify::Report, Error> {
    let staging = Staging::begin(out, &owned_entries(model), lock_timeout)?;
    let produced = produce(model, renderer, verify, &|_, files: &[OutputFile]| {
        staging.write(files)
    })?;
    if !verify || produced.report.problems() == 0 {
        staging.commit()?;
    }
    Ok(produced.report)
}

/// What render would change in OUT, sorted by path.
///
/// # Errors
/// When a template fails, OUT is not mcwan's, or on I/O errors.
pub fn compare(model: &Model, renderer: &Renderer, out: &Path) -> Result<Vec<Change>, Error> {
    let existing = Existing::open(out, &owned_entries(model))?;
    let changes = Mutex::new(Vec::new());
    let produced = produce(model, renderer, true, &|whole, files: &[OutputFile]| {
        let mut found = Vec::new();
        for file in files {
            let (kind, old) = match existing.read(&file.path)? {
                Some(old) if old == file.bytes => continue,
                Some(old) => (ChangeKind::Changed, old),
                None => (ChangeKind::Added, Vec::new()),
            };
            found.push(Change {
                path: file.path.clone(),
                kind,
                old,
                new: file.bytes.clone(),
            });
        }
        if let Some(directory) = whole.filter(|d| existing.owned().contains(*d)) {
            let written: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            let stale = existing.files_below(directory)?;
            found.extend(removed(&existing, stale, |path| written.contains(path))?);
        }
        changes.lock().map_err(|_| poisoned())?.extend(found);
        Ok(())
    })?;
    let mut changes = changes.into_inner().map_err(|_| poisoned())?;
    // Cluster directories were compared whole as they arrived; the rest is compared here.
    let clusters: BTreeSet<&str> = model
        .clusterset
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for entry in existing
        .owned()
        .iter()
        .filter(|e| !clusters.contains(e.as_str()))
    {
        let stale = existing.files_below(entry)?;
        changes.extend(removed(&existing, stale, |path| {
            produced.loose.contains(path)
        })?);
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(changes)
}

/// The files among `paths` that were not `written`, as removals.
fn removed(
    existing: &Existing,
    paths: Vec<String>,
    written: impl Fn(&str) -> bool,
) -> Result<Vec<Change>, Error> {
    let mut changes = Vec::new();
    for path in paths.into_iter().filter(|p| !written(p)) {
        if let Some(old) = existing.read(&path)? {
            changes.push(Change {
                path,
                kind: ChangeKind::Removed,
                old,
                new: Vec::new(),
            });
        }
    }
    Ok(changes)
}

/// Where `produce` hands its files: with the directory they make up entirely, if they do
/// (a cluster's), so that a sink can tell the stale files there at once.
type Sink<'a> = dyn Fn(Option<&str>, &[OutputFile]) -> Result<(), Error> + Sync + 'a;

/// What `produce` wrote. Not every path: the cluster directories' files, which make up
/// nearly all of them, were handed over whole and are not listed.
struct Produced {
    /// The paths outside cluster directories: the fabric's and each site's files (a few
    /// per cluster), the summary and the provenance.
    loose: BTreeSet<String>,
    /// How many files in all.
    files: usize,
    /// Where every request goes, compared with the declarations.
    report: verify::Report,
}

/// The top-level entries of OUT a render writes, its provenance excepted: each cluster's
/// directory, the fabric's and the summary.
fn owned_entries(model: &Model) -> BTreeSet<String> {
    let clusters = model.clusterset.clusters.iter().map(|c| c.name.clone());
    clusters
        .chain([FABRIC_DIRECTORY.to_string(), SUMMARY.to_string()])
        .collect()
}

/// The one pipeline behind `render`, `check` and `diff`: plans and renders every cluster in
/// parallel, handing each cluster's files and then its SD-WAN site's to `sink` as soon as
/// they exist, then the fabric, the summary and the provenance.
///
/// With `verify`, each cluster's objects and the fabric's files are also read as the data
/// plane reads them, and the reachability matrix goes into the summary.
fn produce(
    model: &Model,
    renderer: &Renderer,
    verify: bool,
    sink: &Sink,
) -> Result<Produced, Error> {
    let plan = Plan::new(model);
    let classification = fabric::classify(model);
    let totals = Mutex::new(summary::Totals::default());
    let produced = Mutex::new(Produced {
        loose: BTreeSet::new(),
        files: 0,
        report: verify::Report::default(),
    });
    let intent = verify::intent::Intent::of(model);
    let facts = Mutex::new(Vec::new());
    let fabric = Mutex::new(verify::Fabric::default());
    let read_fabric = |files: &[OutputFile]| -> Result<(), Error> {
        for file in files.iter().filter(|f| verify && is_yaml(&f.path)) {
            let document: serde_json::Value = yaml_serde::from_slice(&file.bytes)
                .map_err(|e| Error::Internal(format!("`{}` does not read back: {e}", file.path)))?;
            fabric.lock().map_err(|_| poisoned())?.add(&document);
        }
        Ok(())
    };
    let emit = |whole: Option<&str>, files: &[OutputFile]| -> Result<(), Error> {
        sink(whole, files)?;
        let mut produced = produced.lock().map_err(|_| poisoned())?;
        produced.files += files.len();
        if whole.is_none() {
            produced.loose.extend(files.iter().map(|f| f.path.clone()));
        }
        Ok(())
    };
    for_each_cluster(model.clusterset.clusters.len(), |c| {
        let cluster_plan = plan.cluster(c);
        let (files, objects) = renderer.cluster_objects(model, c, &cluster_plan)?;
        emit(Some(&cluster_plan.name), &files)?;
        drop(files);
        if verify {
            let cluster_facts =
                verify::facts::ClusterFacts::of(&cluster_plan.name, &objects, &intent);
            facts
                .lock()
                .map_err(|_| poisoned())?
                .push((c, cluster_facts));
        }
        let site = SiteFlows::of(model, c, &cluster_plan);
        let site_files = renderer.site(model, &classification, &site)?;
        read_fabric(&site_files)?;
        emit(None, &site_files)?;
        totals.lock().map_err(|_| poisoned())?.add(model, &site);
        Ok(())
    })?;
    let fabric_files = renderer.fabric(&classification)?;
    read_fabric(&fabric_files)?;
    emit(None, &fabric_files)?;
    let report = reachability(
        &intent,
        facts.into_inner().map_err(|_| poisoned())?,
        &fabric.into_inner().map_err(|_| poisoned())?,
    )?;
    let version = env!("CARGO_PKG_VERSION");
    let totals = totals.into_inner().map_err(|_| poisoned())?;
    let mut summary = summary::markdown(&plan, &classification, &totals, version);
    summary.push_str(&summary::reachability(verify.then_some(&report)));
    emit(
        None,
        &[OutputFile {
            path: SUMMARY.to_string(),
            bytes: summary.into_bytes(),
        }],
    )?;
    let provenance = Provenance {
        generator: "mcwan".into(),
        version: version.into(),
        input_digest: model.input_digest.clone(),
        owns: owned_entries(model),
        intent: Some(intent),
    };
    emit(None, &[provenance.file()])?;
    let mut produced = produced.into_inner().map_err(|_| poisoned())?;
    produced.report = report;
    Ok(produced)
}

/// The reachability matrix: each cluster's rows in parallel, then in ClusterSet order.
fn reachability(
    intent: &verify::intent::Intent,
    mut facts: Vec<(usize, verify::facts::ClusterFacts)>,
    fabric: &verify::Fabric,
) -> Result<verify::Report, Error> {
    facts.sort_by_key(|(c, _)| *c);
    let facts: Vec<_> = facts.into_iter().map(|(_, f)| f).collect();
    let view = verify::View::new(intent, &facts, fabric);
    let rows = Mutex::new(Vec::new());
    for_each_cluster(facts.len(), |c| {
        let of = view.rows_of(c);
        rows.lock().map_err(|_| poisoned())?.push((c, of));
        Ok(())
    })?;
    let mut rows = rows.into_inner().map_err(|_| poisoned())?;
    rows.sort_by_key(|(c, _)| *c);
    Ok(verify::Report {
        rows: rows.into_iter().flat_map(|(_, r)| r).collect(),
    })
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

/// An absolute path for `path` as the OS will resolve it once its missing directories are
/// created: component by component, symbolic links resolved where the prefix exists, and
/// `..` taken lexically where it does not (a directory mcwan creates has no link to
/// follow). So `OUT/missing/../clusters` is seen inside `clusters`.
fn resolve(path: &Path) -> Result<PathBuf, Error> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(Path::new("."), e))?
            .join(path)
    };
    let mut current = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => current.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                current.pop();
            }
            Component::Normal(name) => {
                current.push(name);
                if let Ok(real) = current.canonicalize() {
                    current = real;
                }
            }
        }
    }
    Ok(current)
}

fn print_stdout(text: &str) -> Result<(), Error> {
    use std::io::Write;
    match writeln!(io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Path::new("<stdout>"), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's base repository must render, or fuzzing only exercises rejections.
    #[test]
    fn compile_renders_the_fuzz_base() {
        let files = load::read(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/l7-payment")),
            load::Limits::default(),
        )
        .unwrap();
        let mut diagnostics = Diagnostics::default();
        let written = compile(&files, load::Limits::default(), &mut diagnostics).unwrap();
        assert!(!diagnostics.has_errors(), "{:?}", diagnostics.into_sorted());
        assert!(written > 30, "{written} files");
    }
}
