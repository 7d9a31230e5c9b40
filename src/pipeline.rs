//! The pipeline behind `render`, `check`, `diff` and the fuzzer: load → check → plan →
//! render → verify → emit, with every cluster planned and rendered in parallel.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Mutex;

use crate::conventions::FABRIC_DIRECTORY;
use crate::conventions::SUMMARY;
use crate::diagnostic::Diagnostics;
use crate::diff::{Change, ChangeKind};
use crate::emit::{Existing, Provenance, Staging};
use crate::error::Error;
use crate::fabric::SiteFlows;
use crate::model::{ClusterId, Model};
use crate::plan::Plan;
use crate::render::OutputFile;
use crate::render::{RenderedCluster, Renderer};
use crate::schema::Schemas;
use crate::{check, fabric, load, parallel, summary, verify};

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
/// swaps it in for OUT, waiting at most `lock_timeout` for another render of OUT. OUT is
/// replaced only when verification found no problem, or `verify` is false.
///
/// Each file is compared with OUT's as it is written, so that the render can say what it
/// changed without a second pass over either tree.
///
/// # Errors
/// When a template fails, or on I/O errors; OUT is then left as it was.
pub fn render(
    model: &Model,
    renderer: &Renderer,
    out: &Path,
    verify: bool,
    lock_timeout: Option<std::time::Duration>,
) -> Result<Rendered, Error> {
    let owns = owned_entries(model);
    let staging = Staging::begin(out, &owns, lock_timeout)?;
    // Under the lock: the OUT the swap replaces.
    let existing = Existing::open(out, &owns)?;
    let files = Mutex::new(FileCounts::default());
    let produced = produce(model, renderer, verify, &|whole, batch: &[OutputFile]| {
        staging.write(batch)?;
        let mut counts = FileCounts {
            removed: stale_in(&existing, whole, batch)?.len(),
            ..FileCounts::default()
        };
        for file in batch {
            match existing.holds(&file.path, &file.bytes) {
                None => counts.added += 1,
                Some(false) => counts.changed += 1,
                Some(true) => {}
            }
        }
        files.lock().map_err(|_| poisoned())?.add(&counts);
        Ok(())
    })?;
    let mut files = files.into_inner().map_err(|_| poisoned())?;
    files.removed += stale_elsewhere(&existing, model, &produced.loose)?.len();
    if !verify || produced.report.problems() == 0 {
        staging.commit()?;
    }
    Ok(Rendered {
        report: produced.report,
        clusters: model.clusterset.clusters.len(),
        objects: produced.objects,
        files,
    })
}

/// What a render wrote, and what `verify` found.
pub struct Rendered {
    pub report: verify::Report,
    pub clusters: usize,
    /// The objects in the cluster directories (kustomizations aside).
    pub objects: usize,
    /// How the files compare with the OUT the render replaced.
    pub files: FileCounts,
}

/// Files of OUT a render adds, changes and removes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FileCounts {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

impl FileCounts {
    fn add(&mut self, other: &FileCounts) {
        self.added += other.added;
        self.changed += other.changed;
        self.removed += other.removed;
    }
}

impl Rendered {
    /// The one line a render prints: `rendered 2 clusters, 41 objects to `out`: 3 added,
    /// 1 changed, 0 removed files`, or `…: no file changed`.
    #[must_use]
    pub fn line(&self, out: &Path) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let FileCounts {
            added,
            changed,
            removed,
        } = self.files;
        let files = if added + changed + removed == 0 {
            "no file changed".to_string()
        } else {
            format!("{added} added, {changed} changed, {removed} removed files")
        };
        format!(
            "rendered {}, {} to `{}`: {files}",
            plural(self.clusters, "cluster"),
            plural(self.objects, "object"),
            out.display()
        )
    }
}

/// How many parts `stream` judges one cluster's flows in, shared out among the cores.
const FLOW_PARTS: usize = 64;

/// One cluster's objects, streamed, and the verification of the flows it sends.
pub struct Streamed {
    /// The cluster's objects, each as render writes its file, in `kubectl kustomize` order
    /// (`render::write_stream` prints them as one YAML stream).
    pub documents: Vec<Vec<u8>>,
    /// The cluster's rows of the reachability matrix: every flow it sends; empty without
    /// `verify`.
    pub report: verify::Report,
}

/// Renders cluster `c` alone, as one YAML stream, and with `verify` judges every flow it
/// sends as `render` does: its objects read as its proxies read them, the fabric's classes
/// and its site's flows, and every other cluster's gateways. Those are all another cluster
/// contributes to these flows (`Plan::gateways`), so its imports are neither planned nor
/// rendered. The flows other clusters send to `c` are theirs to verify.
///
/// `c` is rendered first, on one core, while the others read the other clusters' gateways;
/// its parsed objects are read as soon as it is rendered, and dropped.
///
/// # Errors
/// When a template fails, which for valid input is a bug.
pub fn stream(
    model: &Model,
    renderer: &Renderer,
    c: ClusterId,
    verify: bool,
) -> Result<Streamed, Error> {
    let plan = Plan::new(model);
    let agrees = |c: ClusterId| move |object: &serde_json::Value| fabric::verify(model, c, object);
    if !verify {
        return Ok(Streamed {
            documents: renderer.stream(&plan.cluster(c), &agrees(c))?.documents,
            report: verify::Report::default(),
        });
    }
    let intent = verify::intent::Intent::of(model);
    let classification = fabric::classify(model);
    let peers = Mutex::new(HashSet::new());
    // `c` first, with its documents and site files, then the others in ClusterSet order.
    let mut facts = map_clusters(model.clusterset.clusters.len(), |i| {
        let peer = ClusterId(match i {
            0 => c.0,
            i if i <= c.0 => i - 1,
            i => i,
        });
        let (mut cluster_facts, own) = if peer == c {
            let cluster_plan = plan.cluster(c);
            let streamed = renderer.stream(&cluster_plan, &agrees(c))?;
            let site = SiteFlows::of(c, &cluster_plan);
            let site_files = renderer.site(&classification, c, &site.views(model))?;
            let name = cluster_plan.name.clone();
            drop(cluster_plan);
            let cluster_facts = verify::facts::ClusterFacts::of(&name, &streamed.objects, &intent);
            (cluster_facts, Some((streamed.documents, site_files)))
        } else {
            let gateways = plan.gateways(peer);
            let objects = renderer.verified_objects(&gateways, &agrees(peer))?;
            let cluster_facts = verify::facts::ClusterFacts::of(&gateways.name, &objects, &intent);
            (cluster_facts, None)
        };
        cluster_facts.share_peers(&mut *peers.lock().map_err(|_| poisoned())?);
        Ok((cluster_facts, own))
    })?;
    let (own_facts, own) = facts.remove(0);
    let (documents, site_files) =
        own.ok_or_else(|| Error::Internal("the cluster was not rendered".into()))?;
    let mut facts: Vec<_> = facts.into_iter().map(|(f, _)| f).collect();
    facts.insert(c.0, own_facts);
    let mut fabric = verify::Fabric::default();
    for file in renderer.fabric(&classification)?.iter().chain(&site_files) {
        if is_yaml(&file.path) {
            fabric.add(&read_back(file)?);
        }
    }
    let view = verify::View::new(&intent, &mut facts, &fabric);
    // Its flows in parts, judged on all cores.
    let flows = view.flow_count(c.0);
    let part = flows.div_ceil(FLOW_PARTS).max(1);
    let parts = map_clusters(flows.div_ceil(part), |i| {
        Ok(view.flow_rows(c.0, i * part..flows.min((i + 1) * part)))
    })?;
    let mut rows: Vec<verify::Row> = parts.into_iter().flatten().collect();
    rows.extend(view.unrouted_rows(c.0));
    Ok(Streamed {
        documents,
        report: verify::Report { rows },
    })
}

/// A YAML file mcwan rendered, read back.
fn read_back(file: &OutputFile) -> Result<serde_json::Value, Error> {
    yaml_serde::from_slice(&file.bytes)
        .map_err(|e| Error::Internal(format!("`{}` does not read back: {e}", file.path)))
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
        found.extend(removed(&existing, stale_in(&existing, whole, files)?)?);
        changes.lock().map_err(|_| poisoned())?.extend(found);
        Ok(())
    })?;
    let mut changes = changes.into_inner().map_err(|_| poisoned())?;
    let stale = stale_elsewhere(&existing, model, &produced.loose)?;
    changes.extend(removed(&existing, stale)?);
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(changes)
}

/// The files of OUT a batch of `produce` drops: when the batch is a whole directory OUT
/// has (a cluster's), its files there that the batch does not write.
fn stale_in(
    existing: &Existing,
    whole: Option<&str>,
    files: &[OutputFile],
) -> Result<Vec<String>, Error> {
    let Some(directory) = whole.filter(|d| existing.owned().contains(*d)) else {
        return Ok(Vec::new());
    };
    let written: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut stale = existing.files_below(directory)?;
    stale.retain(|path| !written.contains(path.as_str()));
    Ok(stale)
}

/// The files of OUT's other entries mcwan owns (the fabric's, the summary, the
/// provenance, a cluster's that is gone) that a render did not write (`loose`). Cluster
/// directories are compared whole as they arrive (`stale_in`).
fn stale_elsewhere(
    existing: &Existing,
    model: &Model,
    loose: &BTreeSet<String>,
) -> Result<Vec<String>, Error> {
    let clusters: BTreeSet<&str> = model
        .clusterset
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let mut stale = Vec::new();
    for entry in existing
        .owned()
        .iter()
        .filter(|e| !clusters.contains(e.as_str()))
    {
        let mut files = existing.files_below(entry)?;
        files.retain(|path| !loose.contains(path));
        stale.extend(files);
    }
    Ok(stale)
}

/// The files `paths` of OUT, as removals.
fn removed(existing: &Existing, paths: Vec<String>) -> Result<Vec<Change>, Error> {
    let mut changes = Vec::new();
    for path in paths {
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
    /// How many objects the cluster directories hold.
    objects: usize,
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
        objects: 0,
        report: verify::Report::default(),
    });
    let intent = verify::intent::Intent::of(model);
    let fabric = Mutex::new(verify::Fabric::default());
    let read_fabric = |files: &[OutputFile]| -> Result<(), Error> {
        for file in files.iter().filter(|f| verify && is_yaml(&f.path)) {
            let document = read_back(file)?;
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
    let facts = map_clusters(model.clusterset.clusters.len(), |i| {
        let c = ClusterId(i);
        let cluster_plan = plan.cluster(c);
        let agrees = |object: &serde_json::Value| fabric::verify(model, c, object);
        let RenderedCluster {
            files,
            objects,
            object_files,
        } = renderer.cluster(&cluster_plan, &agrees)?;
        emit(Some(&cluster_plan.name), &files)?;
        produced.lock().map_err(|_| poisoned())?.objects += object_files;
        drop(files);
        let cluster_facts =
            verify.then(|| verify::facts::ClusterFacts::of(&cluster_plan.name, &objects, &intent));
        let site = SiteFlows::of(c, &cluster_plan);
        let site_files = renderer.site(&classification, c, &site.views(model))?;
        read_fabric(&site_files)?;
        emit(None, &site_files)?;
        totals.lock().map_err(|_| poisoned())?.add(model, &site);
        Ok(cluster_facts)
    })?;
    let fabric_files = renderer.fabric(&classification)?;
    read_fabric(&fabric_files)?;
    emit(None, &fabric_files)?;
    let report = reachability(
        &intent,
        facts.into_iter().flatten().collect(),
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
pub(crate) fn reachability(
    intent: &verify::intent::Intent,
    mut facts: Vec<verify::facts::ClusterFacts>,
    fabric: &verify::Fabric,
) -> Result<verify::Report, Error> {
    let count = facts.len();
    let view = verify::View::new(intent, &mut facts, fabric);
    let rows = map_clusters(count, |c| Ok(view.rows_of(c)))?;
    Ok(verify::Report {
        rows: rows.into_iter().flatten().collect(),
    })
}

pub(crate) fn poisoned() -> Error {
    Error::Internal("a render thread panicked".into())
}

/// `work` for every index on all cores (`parallel::map`), its results in index order, or
/// the error of the lowest failing index, so that failures are reported the same way on
/// every run. Each worker holds one index's output at a time.
pub(crate) fn map_clusters<T: Send>(
    count: usize,
    work: impl Fn(usize) -> Result<T, Error> + Sync,
) -> Result<Vec<T>, Error> {
    parallel::map(count, work)
        .map_err(|_| poisoned())?
        .into_iter()
        .collect()
}

/// Whether an OUT-relative path is a YAML file mcwan wrote (always lowercase `.yaml`).
pub(crate) fn is_yaml(path: &str) -> bool {
    Path::new(path).extension().is_some_and(|e| e == "yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `render --cluster C` judges exactly the rows of the whole render's matrix whose
    /// source is C, for every example: the other clusters' gateways (`Plan::gateways`) are
    /// all its flows meet.
    #[test]
    fn a_cluster_alone_verifies_its_rows_of_the_whole_matrix() {
        let examples = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
        let renderer = Renderer::new(&[]).unwrap();
        let mut compared = 0;
        for entry in std::fs::read_dir(examples).unwrap() {
            let dir = entry.unwrap().path();
            let files = load::read(&dir, load::Limits::default()).unwrap();
            let mut diagnostics = Diagnostics::default();
            let sources = load::parse(&files, load::Limits::default(), &mut diagnostics);
            let options = check::Options::default();
            let model = check::check(&sources, &Schemas::input(), options, &mut diagnostics)
                .unwrap_or_else(|| panic!("{}: {:?}", dir.display(), diagnostics.into_sorted()));
            let whole = produce(&model, &renderer, true, &|_, _: &[OutputFile]| Ok(())).unwrap();
            for c in model.clusterset.ids() {
                let name = &model.clusterset.cluster(c).name;
                let rows = |rows: &[verify::Row]| -> Vec<serde_json::Value> {
                    rows.iter()
                        .filter(|r| r.source == *name)
                        .map(|r| serde_json::to_value(r).unwrap())
                        .collect()
                };
                let alone = stream(&model, &renderer, c, true).unwrap().report;
                assert_eq!(alone.rows.len(), rows(&alone.rows).len(), "{name}");
                assert!(
                    !alone.rows.is_empty(),
                    "{}: {name} sends no flow",
                    dir.display()
                );
                assert_eq!(
                    rows(&alone.rows),
                    rows(&whole.report.rows),
                    "{}: {name}",
                    dir.display()
                );
                compared += 1;
            }
        }
        assert!(compared >= 10, "only {compared} clusters compared");
    }

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
