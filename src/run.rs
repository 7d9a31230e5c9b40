//! One function per command: parses the command line, runs the pipeline or the verbs,
//! prints diagnostics and reports, and maps the outcome to an exit code.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde_json::{json, Value};

use crate::cli::{Cli, Command, Input};
use crate::conventions::FABRIC_DIRECTORY;
use crate::diagnostic::Diagnostics;
use crate::emit::Existing;
use crate::error::Error;
use crate::fabric::SiteFlows;
use crate::model::Model;
use crate::paths::Paths;
use crate::pipeline::{self, compare, is_yaml, map_clusters, poisoned, reachability};
use crate::plan::Plan;
use crate::render::Renderer;
use crate::report::{Format, Stream};
use crate::schema::Schemas;
use crate::{
    check, cli, diagnostic, diff, edit, emit, generate, load, render, report, source, status,
    summary, verify,
};

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
    refuse_markdown(&command)?;
    match command {
        Command::Validate { input } => run_validate(&input),
        Command::Render {
            input,
            destination,
            rendering,
            no_verify,
            lock_timeout,
        } => match (destination.cluster, destination.out) {
            (Some(cluster), _) => run_render_cluster(&input, &rendering, &cluster, no_verify),
            (None, Some(out)) => {
                let output = cli::Output { out, rendering };
                run_render(&input, &output, no_verify, lock_timeout)
            }
            (None, None) => Err(Error::Usage("`-o OUT` or `--cluster C` is required".into())),
        },
        Command::Verify {
            out,
            declarations,
            path_prefix,
            format,
        } => {
            let declarations = declarations.map(|dir| Input {
                path_prefix,
                ..Input::defaults(dir)
            });
            verify_out(&out, declarations.as_ref(), format)
        }
        Command::Check { input, output } => run_check(&input, &output),
        Command::Diff { input, output } => run_diff(&input, &output),
        Command::Status { service, input } => run_status(&input, &service),
        Command::Graph { input, dot } => run_graph(&input, dot),
        Command::Export { target, wan_policy } => {
            run_verb(edit::Verb::Export, &target, wan_policy, false)
        }
        Command::Unexport { target } => run_verb(edit::Verb::Unexport, &target, None, false),
        Command::Import { target, only } => run_verb(edit::Verb::Import, &target, None, only),
        Command::Unimport { target } => run_verb(edit::Verb::Unimport, &target, None, false),
        Command::Generate { out, shape } => run_generate(&out, shape),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "mcwan", &mut script);
            print_stdout(String::from_utf8_lossy(&script).trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { kind, bundle } => run_schema(kind.as_deref(), bundle),
        Command::Explain { code } => run_explain(&code),
    }
}

/// Markdown is a review summary: only `diff` and `verify` print one.
fn refuse_markdown(command: &Command) -> Result<(), Error> {
    let input = match command {
        Command::Validate { input }
        | Command::Render { input, .. }
        | Command::Check { input, .. }
        | Command::Status { input, .. }
        | Command::Graph { input, .. } => input,
        Command::Export { target, .. }
        | Command::Unexport { target }
        | Command::Import { target, .. }
        | Command::Unimport { target } => &target.input,
        _ => return Ok(()),
    };
    if input.format == Format::Markdown {
        return Err(Error::Usage(
            "`--format markdown` is for `diff` and `verify`".into(),
        ));
    }
    Ok(())
}

fn run_render(
    input: &Input,
    output: &cli::Output,
    no_verify: bool,
    lock_timeout: Option<u64>,
) -> Result<ExitCode, Error> {
    emit::check_output_location(&input.dir, &output.out)?;
    let (checked, renderer) = prepare(input, &output.rendering)?;
    let Some(model) = diagnosed(input, checked)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let lock_timeout = lock_timeout.map(std::time::Duration::from_secs);
    let written = pipeline::render(&model, &renderer, &output.out, !no_verify, lock_timeout)?;
    let report = &written.report;
    if no_verify || report.problems() == 0 {
        if no_verify {
            eprintln!("warning: --no-verify: no flow was verified, and SUMMARY.md says so");
        }
        eprintln!("{}", written.line(&output.out));
        return Ok(ExitCode::SUCCESS);
    }
    eprint!("{}", report.human_problems());
    eprintln!("error: {} declared flow(s) would not work; `{}` was left as it was (`mcwan render --no-verify` writes it anyway)", report.problems(), output.out.display());
    Ok(ExitCode::from(EXIT_INVALID))
}

/// `render --cluster C`: one cluster's objects on stdout, in `kubectl kustomize` order, once
/// the flows it sends are verified; nothing on stdout when anything fails.
fn run_render_cluster(
    input: &Input,
    rendering: &cli::Rendering,
    cluster: &str,
    no_verify: bool,
) -> Result<ExitCode, Error> {
    if input.format == Format::Json {
        return Err(Error::Usage(
            "with `--cluster`, stdout holds the objects and diagnostics go to stderr: use `--format human` or `github`".into(),
        ));
    }
    let (checked, renderer) = prepare(input, rendering)?;
    let Some(model) = diagnosed(input, checked)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let Some(c) = model.clusterset.id(cluster) else {
        let known: Vec<&str> = model
            .clusterset
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        eprintln!(
            "error: no cluster `{cluster}` in the ClusterSet; its clusters are `{}`",
            known.join("`, `")
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let streamed = pipeline::stream(&model, &renderer, c, !no_verify)?;
    if no_verify {
        eprintln!("warning: --no-verify: no flow of `{cluster}` was verified");
    } else if streamed.report.problems() > 0 {
        eprint!("{}", streamed.report.human_problems());
        eprintln!(
            "error: {} declared flow(s) from `{cluster}` would not work; nothing was printed (`--no-verify` prints it anyway)",
            streamed.report.problems()
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    print_stream(&streamed.documents)?;
    Ok(ExitCode::SUCCESS)
}

fn run_validate(input: &Input) -> Result<ExitCode, Error> {
    let checked = read_checked(input)?;
    // The diagnostics are validate's result.
    print_diagnostics(input, Stream::Stdout, &checked)?;
    Ok(match checked.model {
        Some(_) => ExitCode::SUCCESS,
        None => ExitCode::from(EXIT_INVALID),
    })
}

/// What `check` and `diff` compare: the declarations, checked (their diagnostics printed
/// beside the result), and what render would change in OUT; `None` when they are invalid.
fn compared(
    input: &Input,
    output: &cli::Output,
) -> Result<(Paths, Checked, Option<Vec<diff::Change>>), Error> {
    let paths = printed_paths(input)?;
    let (checked, renderer) = prepare(input, &output.rendering)?;
    print_beside_result(input, &checked)?;
    let changes = match &checked.model {
        Some(model) => Some(compare(model, &renderer, &output.out)?),
        None => None,
    };
    Ok((paths, checked, changes))
}

/// `check`: the unified diff on stdout and the stale files on stderr; with `github`, an
/// annotation per stale file before the diff; with `json`, one document of the diagnostics
/// and the stale files.
fn run_check(input: &Input, output: &cli::Output) -> Result<ExitCode, Error> {
    let (paths, checked, changes) = compared(input, output)?;
    let out = &output.out;
    let code = match &changes {
        Some(changes) if changes.is_empty() => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_INVALID),
    };
    if input.format == Format::Json {
        let stale = changes.as_ref().map(|changes| {
            (changes.iter())
                .map(|c| json!({"path": paths.output(out, &c.path), "change": c.kind.as_str()}))
                .collect::<Vec<_>>()
        });
        let up_to_date = changes.as_ref().map(Vec::is_empty);
        print_document(
            &paths,
            &checked,
            [("upToDate", json!(up_to_date)), ("stale", json!(stale))],
        )?;
        return Ok(code);
    }
    let Some(changes) = changes.filter(|c| !c.is_empty()) else {
        return Ok(code);
    };
    let files: Vec<String> = changes.iter().map(|c| paths.output(out, &c.path)).collect();
    let fix = format!("mcwan render {} -o {}", input.dir.display(), out.display());
    let mut text = String::new();
    if input.format == Format::Github {
        for (file, change) in files.iter().zip(&changes) {
            let would = match change.kind {
                diff::ChangeKind::Added => "add",
                diff::ChangeKind::Changed => "change",
                diff::ChangeKind::Removed => "remove",
            };
            text.push_str(&report::workflow_command(
                "error",
                &[("file", file.clone()), ("title", "out-of-date".to_string())],
                &format!("`{file}` is out of date: `mcwan render` would {would} it (run `{fix}`)"),
            ));
        }
    }
    text.push_str(diff::unified(&changes).trim_end());
    print_stdout(&text)?;
    eprintln!(
        "error: `{}` is out of date: {} file(s) differ from what `mcwan render` writes:\n  {}\nrun `{fix}` and commit the result",
        out.display(),
        files.len(),
        files.join("\n  "),
    );
    Ok(code)
}

/// `diff`: the per-object summary and the unified diff on stdout; with `json`, one document
/// of the diagnostics and the per-object changes.
fn run_diff(input: &Input, output: &cli::Output) -> Result<ExitCode, Error> {
    let (paths, checked, changes) = compared(input, output)?;
    let out = &output.out;
    let code = match &changes {
        None => ExitCode::from(EXIT_FATAL),
        Some(changes) if changes.is_empty() => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(1),
    };
    if input.format == Format::Json {
        let rows = changes.as_deref().map(|changes| {
            (changes.iter().zip(diff::objects(changes)))
                .map(|(change, object)| {
                    json!({
                        "path": paths.output(out, &change.path),
                        "change": object.change.as_str(),
                        "kind": object.kind,
                        "name": object.name,
                        "fields": object.fields(),
                    })
                })
                .collect::<Vec<_>>()
        });
        print_document(&paths, &checked, [("changes", json!(rows))])?;
        return Ok(code);
    }
    if let Some(changes) = changes.filter(|c| !c.is_empty()) {
        let text = if input.format == Format::Markdown {
            diff::markdown(&changes)
        } else {
            format!("{}\n{}", diff::summary(&changes), diff::unified(&changes))
        };
        print_stdout(text.trim_end())?;
    }
    Ok(code)
}

/// `status`: the service's facts as text, or with `json` as one document with the
/// diagnostics (`status` is null, and `error` says why, when there are no facts).
fn run_status(input: &Input, service: &str) -> Result<ExitCode, Error> {
    let paths = printed_paths(input)?;
    let checked = read_checked(input)?;
    print_beside_result(input, &checked)?;
    let status = (checked.model.as_ref()).map(|model| status::Status::of(model, service));
    let code = match &status {
        Some(Ok(_)) => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_INVALID),
    };
    if input.format == Format::Json {
        let (facts, error) = match &status {
            Some(Ok(facts)) => (json!(facts), Value::Null),
            Some(Err(message)) => (Value::Null, json!(message)),
            None => (Value::Null, Value::Null),
        };
        print_document(&paths, &checked, [("status", facts), ("error", error)])?;
        return Ok(code);
    }
    match status {
        Some(Ok(facts)) => print_stdout(facts.text().trim_end())?,
        Some(Err(message)) => eprintln!("error: {message}"),
        None => {}
    }
    Ok(code)
}

/// `graph`: Mermaid or DOT on stdout, which has no JSON form.
fn run_graph(input: &Input, dot: bool) -> Result<ExitCode, Error> {
    if input.format == Format::Json {
        return Err(Error::Usage(
            "`graph` draws Mermaid or DOT and has no `--format json`; use `human` or `github` for its diagnostics".to_string(),
        ));
    }
    let checked = read_checked(input)?;
    let Some(model) = diagnosed(input, checked)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let plan = Plan::new(&model);
    let edges = (model.clusterset.ids())
        .flat_map(|c| summary::edges(&model, &SiteFlows::of(c, &plan.cluster(c))))
        .collect();
    let text = if dot {
        summary::dot(&plan, &edges)
    } else {
        summary::mermaid(&plan, &edges)
    };
    print_stdout(text.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

fn run_generate(out: &Path, shape: generate::Shape) -> Result<ExitCode, Error> {
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Usage(format!(
            "`{}` exists and is not empty",
            out.display()
        )));
    }
    let writes: Vec<(String, Option<String>)> = generate::repository(shape)
        .into_iter()
        .map(|(path, text)| (path, Some(text)))
        .collect();
    emit::apply_edits(out, &writes)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a diagnostic code's section of the reference.
fn run_explain(text: &str) -> Result<ExitCode, Error> {
    let Some(code) = diagnostic::Code::named(text) else {
        let known = diagnostic::Code::ALL.iter().map(|c| c.as_str());
        let hint = diagnostic::did_you_mean(text, known)
            .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
        return Err(Error::Usage(format!("no diagnostic code `{text}`{hint}")));
    };
    print_stdout(code.explanation())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the input schema of `kind`, an array of every kind's, or their bundle.
fn run_schema(kind: Option<&str>, bundle: bool) -> Result<ExitCode, Error> {
    let schemas = Schemas::input();
    if bundle {
        let text = serde_json::to_string_pretty(&schemas.bundle())
            .map_err(|e| Error::Internal(e.to_string()))?;
        print_stdout(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let selected: Vec<_> = schemas
        .sources()
        .filter(|(k, _)| kind.is_none_or(|wanted| k.eq_ignore_ascii_case(wanted)))
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

/// Carries out an imperative verb: the repository must be valid before, and the edit is
/// written only if the repository is still valid after it. Diagnostics of the edited
/// repository that the repository had already are not shown again; those of a refused edit
/// say which of their files were only proposed.
fn run_verb(
    verb: edit::Verb,
    target: &cli::Target,
    wan_policy: Option<String>,
    only: bool,
) -> Result<ExitCode, Error> {
    let input = &target.input;
    if input.format == Format::Json {
        return Err(Error::Usage(
            "export, unexport, import and unimport print no JSON; use `--format human` or `github` for their diagnostics".to_string(),
        ));
    }
    let Some((namespace, name)) = target.service.split_once('/') else {
        return Err(Error::Usage(format!(
            "`{}` is not NAMESPACE/NAME",
            target.service
        )));
    };
    let limits = input.limits();
    let files = load::read(&input.dir, limits)?;
    let before = checked(&files, input, limits);
    print_diagnostics(input, Stream::Stderr, &before)?;
    let Some(model) = &before.model else {
        eprintln!("error: the repository is invalid; fix it before changing it");
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let request = edit::Request {
        verb,
        namespace: namespace.to_string(),
        name: name.to_string(),
        cluster: target.cluster.clone(),
        wan_policy,
        only,
    };
    let (writes, message) = match edit::apply(&request, &files, &before.sources, model, limits) {
        Ok(done) => done,
        Err(message) => {
            eprintln!("error: cannot {}: {message}", request.what());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if writes.is_empty() {
        eprintln!("{message}");
        return Ok(ExitCode::SUCCESS);
    }
    let created: Vec<String> = (writes.iter())
        .filter(|(path, _)| !files.iter().any(|f| f.path == *path))
        .map(|(path, _)| path.clone())
        .collect();
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
    let mut after = checked(&edited, input, limits);
    let seen = |d: &diagnostic::Diagnostic| {
        before.diagnostics.iter().any(|b| {
            (b.code, b.severity, &b.message, &b.hint) == (d.code, d.severity, &d.message, &d.hint)
        })
    };
    after
        .diagnostics
        .retain(|d| d.severity == diagnostic::Severity::Error || !seen(d));
    if after.model.is_none() {
        edit::mark_proposed(&mut after.diagnostics, &writes, &created);
        print_diagnostics(input, Stream::Stderr, &after)?;
        let untouched: Vec<String> = writes
            .iter()
            .map(|(path, _)| {
                if created.contains(path) {
                    format!("`{path}` was not created")
                } else {
                    format!("`{path}` is unchanged")
                }
            })
            .collect();
        eprintln!(
            "error: refusing to {}: the repository would not validate with the change (the error(s) above); nothing was written: {}",
            request.what(),
            untouched.join(", ")
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    print_diagnostics(input, Stream::Stderr, &after)?;
    emit::apply_edits(&input.dir, &writes)?;
    eprintln!("{message}");
    Ok(ExitCode::SUCCESS)
}

/// The declarations, read and checked: what was read, every diagnostic (sorted), and the
/// model when they are valid.
struct Checked {
    sources: source::Sources,
    diagnostics: Vec<diagnostic::Diagnostic>,
    model: Option<Model>,
}

/// Prints the diagnostics on stderr and keeps the model alone: the sources, tens of MiB
/// in a large repository, are dropped before the command goes on.
fn diagnosed(input: &Input, checked: Checked) -> Result<Option<Model>, Error> {
    print_diagnostics(input, Stream::Stderr, &checked)?;
    Ok(checked.model)
}

/// Parses and checks in-memory files. Prints nothing: each command says where its
/// diagnostics go.
fn checked(files: &[load::InputFile], input: &Input, limits: load::Limits) -> Checked {
    let mut diagnostics = Diagnostics::default();
    let sources = load::parse(files, limits, &mut diagnostics);
    let options = check::Options {
        resolve_conflicts: input.resolve_conflicts,
    };
    let model = check::check(&sources, &Schemas::input(), options, &mut diagnostics);
    Checked {
        sources,
        diagnostics: diagnostics.into_sorted(),
        model,
    }
}

/// Loads and checks the declarations.
fn read_checked(input: &Input) -> Result<Checked, Error> {
    let limits = input.limits();
    Ok(checked(&load::read(&input.dir, limits)?, input, limits))
}

/// How `input`'s command prints paths. The current directory is asked only with a prefix,
/// where OUT is found from DIR.
fn printed_paths(input: &Input) -> Result<Paths, Error> {
    let cwd = match &input.path_prefix {
        Some(_) => std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?,
        None => PathBuf::new(),
    };
    Ok(Paths::new(&input.dir, input.path_prefix.as_deref(), &cwd))
}

/// Prints the diagnostics in `input`'s format; human always goes to stderr.
fn print_diagnostics(input: &Input, stream: Stream, checked: &Checked) -> Result<(), Error> {
    let paths = printed_paths(input)?;
    let printed = report::print(
        input.format,
        stream,
        &paths,
        &checked.sources,
        &checked.diagnostics,
    );
    match printed {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::io(Path::new("<output>"), error))
        }
        _ => Ok(()),
    }
}

/// A command whose result goes to stdout prints its diagnostics on stderr, except in JSON,
/// where they belong in its one document (`print_document`).
fn print_beside_result(input: &Input, checked: &Checked) -> Result<(), Error> {
    if input.format == Format::Json {
        return Ok(());
    }
    print_diagnostics(input, Stream::Stderr, checked)
}

/// Prints a command's one JSON document: the diagnostics, then the command's own fields.
fn print_document<const N: usize>(
    paths: &Paths,
    checked: &Checked,
    fields: [(&str, Value); N],
) -> Result<(), Error> {
    let mut document = report::json(paths, &checked.diagnostics);
    for (key, value) in fields {
        document.insert(key.to_string(), value);
    }
    print_stdout(&Value::Object(document).to_string())
}

/// The renderer a rendering asks for and the checked declarations. Template overrides are
/// compiled first, so a broken override fails before any input is read; an override of a
/// vendor template the ClusterSet's vendor would not render fails next.
fn prepare(input: &Input, rendering: &cli::Rendering) -> Result<(Checked, Renderer), Error> {
    let overrides = match &rendering.templates {
        Some(dir) => load::template_overrides(dir)?,
        None => Vec::new(),
    };
    // Compiling the templates and output schemas and checking the input are independent.
    let (renderer, checked) = std::thread::scope(|scope| {
        let renderer = scope.spawn(|| Renderer::new(&overrides));
        let checked = read_checked(input);
        let renderer = renderer.join().map_err(|_| poisoned())?;
        Ok::<_, Error>((renderer?.with_layout(rendering.layout), checked?))
    })?;
    if let Some(model) = &checked.model {
        renderer.check_vendor(model.clusterset.sdwan.vendor)?;
    }
    Ok((checked, renderer))
}

/// `mcwan verify OUT`: reads OUT's cluster directories and fabric, under the rules `check`
/// reads OUT by, and compares them with the recorded intent or the declarations.
fn verify_out(
    out: &Path,
    declarations: Option<&Input>,
    format: report::Format,
) -> Result<ExitCode, Error> {
    let intent = match declarations {
        Some(input) => {
            let checked = read_checked(input)?;
            let Some(model) = diagnosed(input, checked)? else {
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
    let facts = map_clusters(intent.clusters.len(), |c| {
        let name = &intent.clusters[c].name;
        let mut objects = Vec::new();
        for path in existing.files_below(name)?.iter().filter(|p| verified(p)) {
            objects.extend(parse(path)?);
        }
        objects.retain(|o| render::VERIFIED_KINDS.iter().any(|k| o["kind"] == *k));
        let objects = objects.into_iter().collect();
        Ok(verify::facts::ClusterFacts::of(name, &objects, &intent))
    })?;
    let mut fabric = verify::Fabric::default();
    for path in existing.files_below(FABRIC_DIRECTORY)? {
        if is_yaml(&path) {
            fabric.add(&parse(&path)?.unwrap_or_default());
        }
    }
    let report = reachability(&intent, facts, &fabric)?;
    let text = match format {
        report::Format::Human => report.human(),
        report::Format::Json => {
            let mut json = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::Internal(e.to_string()))?;
            json.push('\n');
            json
        }
        report::Format::Github => report.github(),
        report::Format::Markdown => report.markdown(usize::MAX),
    };
    print_stdout(text.trim_end())?;
    Ok(if report.problems() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// Writes `bytes` to stdout as they are; a closed pipe is not an error.
/// Prints documents on stdout as one YAML stream.
fn print_stream(documents: &[Vec<u8>]) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    match render::write_stream(documents, &mut stdout).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Path::new("<stdout>"), e)),
        _ => Ok(()),
    }
}

fn print_stdout(text: &str) -> Result<(), Error> {
    use std::io::Write;
    match writeln!(io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Path::new("<stdout>"), e)),
        _ => Ok(()),
    }
}
