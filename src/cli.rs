//! Command-line surface: argument parsing only. `lib.rs` runs the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::kind::Kind;
use crate::report::Format;

/// Compiles clusterset, WAN policy and service-export declarations into one GitOps
/// directory per cluster (Gateway API, Istio, MCS) plus the SD-WAN classification.
///
/// Exit codes: 0 success, 1 invalid input, 2 usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "mcwan", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, compile, verify every flow, and write OUT atomically; remove stale files
    /// mcwan owns. With `--cluster C` instead of `-o OUT`, print that one cluster's objects
    /// as a YAML stream on stdout, as `kubectl kustomize OUT/C` would, and write nothing.
    ///
    /// Exit codes: 0 written, 1 invalid input or a declared flow that would not work (OUT is
    /// left as it was, nothing is printed), 2 usage or I/O error.
    Render {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        destination: Destination,
        #[command(flatten)]
        rendering: Rendering,
        /// Write OUT (or print the stream) even when `verify` finds a declared flow that
        /// would not work.
        #[arg(long)]
        no_verify: bool,
        /// Give up, with exit code 2, after waiting this many seconds for another render of
        /// OUT to release its lock (default: wait as long as it takes).
        #[arg(long, value_name = "SECONDS", conflicts_with = "cluster")]
        lock_timeout: Option<u64>,
    },
    /// Prove from a rendered OUT alone where every request goes: each cluster's sidecar
    /// routes, endpoints and priorities, the SD-WAN class of the hop, and the exporter's
    /// gateway; compared with the declared intent.
    ///
    /// Exit codes: 0 every flow as declared, 1 a problem, 2 usage or I/O error.
    Verify {
        /// The rendered output directory.
        #[arg(value_name = "OUT")]
        out: PathBuf,
        /// Compare with these declarations instead of the intent render recorded in OUT.
        #[arg(long, value_name = "DIR")]
        declarations: Option<PathBuf>,
        /// Print the paths of the declarations' files below PREFIX instead of DIR.
        #[arg(long, value_name = "PREFIX", requires = "declarations")]
        path_prefix: Option<PathBuf>,
        /// How to print the matrix: a line per flow, JSON, or GitHub annotations.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Fail if OUT differs from what render would write; print a unified diff.
    ///
    /// The stale files are named on stderr; `--format github` also prints an annotation per
    /// stale file, and `json` one document of the diagnostics and the stale files.
    ///
    /// Exit codes: 0 up to date, 1 out of date or invalid input, 2 usage or I/O error.
    Check {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        output: Output,
    },
    /// Show per object what render would add, change or remove in OUT, then the diff.
    ///
    /// `--format json` prints one document of the diagnostics and the per-object changes.
    ///
    /// Exit codes as diff(1): 0 no differences, 1 differences, 2 trouble (invalid input included).
    Diff {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        output: Output,
    },
    /// Show who exports and imports a service, over which WAN policy, tunnel and gateways.
    ///
    /// `--format json` prints one document of the diagnostics and these facts.
    Status {
        /// The service, as NAMESPACE/NAME.
        #[arg(value_name = "NS/NAME")]
        service: String,
        #[command(flatten)]
        input: Input,
    },
    /// Draw the clusterset: clusters, exported services, and imports labelled with tunnels.
    ///
    /// The graph goes to stdout and the diagnostics to stderr; there is no `--format json`.
    Graph {
        #[command(flatten)]
        input: Input,
        /// Graphviz DOT instead of Mermaid.
        #[arg(long)]
        dot: bool,
    },
    /// Export a service from a cluster: write its ServiceExport into the repository. Run
    /// again with another `--wan-policy`, it changes the export's policy annotation; with
    /// the same or none, it changes nothing.
    Export {
        #[command(flatten)]
        target: Target,
        /// The WAN policy: its name, or a part of its name no other policy name contains
        /// (`high` for `sd-wan-priority-high`); default: the ClusterSet's.
        #[arg(long, value_name = "POLICY")]
        wan_policy: Option<String>,
    },
    /// Remove a cluster's ServiceExport: its file, or its document when the file holds
    /// other objects too.
    Unexport {
        #[command(flatten)]
        target: Target,
    },
    /// Import a service into a cluster: undo an opt-out, or add the service's namespace,
    /// which imports every exported service of the namespace (each is listed).
    Import {
        #[command(flatten)]
        target: Target,
        /// When the namespace is added: import only this service, and opt out of the
        /// namespace's other exported services (`skipImports`).
        #[arg(long)]
        only: bool,
    },
    /// Stop a cluster importing a service: record an opt-out in the ClusterSet.
    Unimport {
        #[command(flatten)]
        target: Target,
    },
    /// Write a synthetic declarations repository, for benchmarks and tests.
    Generate {
        /// Where to write it; must not exist or be empty.
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        shape: crate::generate::Shape,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Report every problem in the declarations.
    ///
    /// `--format human` prints them on stderr, `json` and `github` on stdout.
    Validate {
        #[command(flatten)]
        input: Input,
    },
    /// Explain a diagnostic code: print its section of the reference (docs/diagnostics.md).
    Explain {
        /// The code, as diagnostics print it (`yaml-syntax`).
        code: String,
    },
    /// Print the JSON Schema of an input kind (or of all), for editors.
    ///
    /// For yaml-language-server, `--bundle` prints one schema for files that mix kinds.
    Schema {
        /// The kind; every kind, as a JSON array, when left out.
        #[arg(ignore_case = true, value_parser = kinds(), conflicts_with = "bundle")]
        kind: Option<String>,
        /// One schema, with an `$id`, that checks each document against its kind's schema.
        #[arg(long)]
        bundle: bool,
    },
}

/// What `check` and `diff` compare against, and how render would write it.
#[derive(Debug, Args)]
pub struct Output {
    /// The output directory, one subdirectory per cluster.
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub rendering: Rendering,
}

/// Where `render` puts what it renders: every cluster into OUT, or one cluster to stdout.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Destination {
    /// The output directory, one subdirectory per cluster.
    #[arg(short, long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Print only this cluster's objects, as one YAML stream in `kubectl kustomize` order,
    /// and write no file (for an Argo CD config management plugin).
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
}

/// How objects are rendered and laid out.
#[derive(Debug, Args)]
pub struct Rendering {
    /// Override built-in templates with the `.j2` files of this directory.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// One kustomization per cluster, or one per namespace directory.
    #[arg(long, value_enum, default_value = "cluster")]
    pub layout: crate::render::Layout,
}

/// What an imperative verb acts on.
#[derive(Debug, Args)]
pub struct Target {
    /// The service, as NAMESPACE/NAME.
    #[arg(value_name = "NS/NAME")]
    pub service: String,
    /// The cluster to change.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: String,
    #[command(flatten)]
    pub input: Input,
}

#[derive(Debug, Args)]
pub struct Input {
    /// The declarations repository.
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// How to print the result and the diagnostics: for people, as one JSON document on
    /// stdout, or as GitHub annotations. Diagnostics go to stderr, except with `json` (they are
    /// in the document) and for `validate` (they are its result).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Print the paths of DIR's files (and OUT's, found from DIR) below PREFIX instead of DIR,
    /// as a CI job that runs mcwan from another directory needs for its annotations.
    #[arg(long, value_name = "PREFIX")]
    pub path_prefix: Option<PathBuf>,
    /// Resolve MCS conflicts by ClusterSet order (the earlier cluster wins) instead of failing.
    #[arg(long)]
    pub resolve_conflicts: bool,
    /// Largest input file read, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// Deepest nesting of YAML mappings and sequences (at most 128).
    #[arg(long, value_name = "LEVELS", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=128))]
    pub max_depth: u16,
}

impl Input {
    /// The declarations in `dir`, read under the default limits, as `verify --declarations`
    /// reads them.
    #[must_use]
    pub fn defaults(dir: PathBuf) -> Self {
        let limits = crate::load::Limits::default();
        Input {
            dir,
            format: Format::Human,
            path_prefix: None,
            resolve_conflicts: false,
            max_file_bytes: limits.max_file_bytes,
            max_depth: u16::try_from(limits.max_depth).unwrap_or(u16::MAX),
        }
    }

    /// The bounds the flags set on reading the declarations.
    #[must_use]
    pub fn limits(&self) -> crate::load::Limits {
        crate::load::Limits {
            max_file_bytes: self.max_file_bytes,
            max_depth: usize::from(self.max_depth),
        }
    }
}

/// The kinds `mcwan schema` knows, each with what it declares.
fn kinds() -> clap::builder::PossibleValuesParser {
    let values = Kind::ALL
        .iter()
        .map(|k| clap::builder::PossibleValue::new(k.name()).help(k.about()));
    clap::builder::PossibleValuesParser::new(values)
}
