//! Every diagnostic mcwan reports, one entry per code: its variant of `Code`, its stable
//! kebab-case text, and the one constructor that words it. Passes state rules and call
//! these constructors with typed values; no other module writes a message or a hint.
//! Nothing here decides whether input is valid.
//!
//! Adding a diagnostic takes its entry here, its section in `docs/diagnostics.md` and its
//! `tests/invalid/<code>.case`. Entries are in the order of `Code`, which sorts
//! diagnostics at one location: only ever append.

use serde_json::Value;

use crate::diagnostic::{did_you_mean, printable, Diagnostic, Location, Severity};
use crate::kind::Kind;
use crate::model::ServicePort;
use crate::schema::field_path;

/// A diagnostic before its code: what the constructors below build.
#[derive(Debug)]
struct Draft {
    severity: Severity,
    primary: Option<Location>,
    message: String,
    hint: Option<String>,
    secondary: Vec<(Location, String)>,
}

fn error(primary: impl Into<Option<Location>>, message: impl Into<String>) -> Draft {
    Draft {
        severity: Severity::Error,
        primary: primary.into(),
        message: message.into(),
        hint: None,
        secondary: Vec::new(),
    }
}

fn warning(primary: impl Into<Option<Location>>, message: impl Into<String>) -> Draft {
    Draft {
        severity: Severity::Warning,
        ..error(primary, message)
    }
}

impl Draft {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Another place involved, with a short label ("also declared here").
    fn also(mut self, location: Location, label: impl Into<String>) -> Self {
        self.secondary.push((location, label.into()));
        self
    }

    /// Control characters escaped everywhere: names from a hostile file can neither move a
    /// terminal's cursor nor break a line of `--format github` output.
    fn finish(self, code: Code) -> Diagnostic {
        Diagnostic {
            code,
            severity: self.severity,
            message: printable(self.message),
            hint: self.hint.map(printable),
            primary: self.primary,
            secondary: self
                .secondary
                .into_iter()
                .map(|(location, label)| (location, printable(label)))
                .collect(),
        }
    }
}

macro_rules! diagnostics {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident => $text:literal,
        fn $name:ident $(<$($lt:lifetime),*>)? ($($arg:ident: $ty:ty),* $(,)?) $body:block
    )*) => {
        /// Stable diagnostic codes. Each is documented in `docs/diagnostics.md`; renaming one
        /// breaks users' CI filters, so codes are only ever added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// The code named `text`.
            #[must_use]
            pub fn named(text: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str() == text)
            }
        }

        $(
            $(#[doc = $doc])*
            #[must_use]
            pub fn $name $(<$($lt),*>)? ($($arg: $ty),*) -> Diagnostic {
                let draft: Draft = $body;
                draft.finish(Code::$variant)
            }
        )*
    };
}

/// Where each code is documented: the reference every diagnostic links to.
const REFERENCE: &str = include_str!("../docs/diagnostics.md");

impl Code {
    /// The code's section of the reference, as a link relative to mcwan's repository.
    #[must_use]
    pub fn documentation(self) -> String {
        format!("docs/diagnostics.md#{}", self.as_str())
    }

    /// The code's section of the reference, from its heading to the next heading, as
    /// `mcwan explain` prints it.
    #[must_use]
    pub fn explanation(self) -> &'static str {
        let heading = format!("### `{}`", self.as_str());
        let Some(start) = REFERENCE.find(&heading) else {
            return "";
        };
        let body = &REFERENCE[start..];
        let end = body[heading.len()..]
            .find("\n#")
            .map_or(body.len(), |i| heading.len() + i + 1);
        body[..end].trim_end()
    }
}

/// Why a file could not be read.
#[derive(Debug, Clone, Copy)]
pub enum Unreadable {
    TooLarge { size: u64, limit: u64 },
    NotUtf8,
}

/// What is wrong with a file's YAML.
#[derive(Debug, Clone)]
pub enum Syntax<'a> {
    DuplicateKey(&'a str),
    /// A YAML 1.1 merge key (`<<`).
    MergeKey,
    /// The parser's own message, without its position.
    Parser(&'a str),
    /// The parser's message where a tab indents a line or stands at the position.
    Tab(&'a str),
    /// The parser's message about the end of a file inside a quoted string that opens at
    /// the location; the file ends on line `end`.
    Unclosed {
        message: &'a str,
        end: usize,
    },
    /// The parser's message where a quoted string that opened on an earlier line ends.
    RunsOn {
        message: &'a str,
        open: Location,
    },
}

/// A bound on input that a file crosses (`load::Limits`, docs/reliability.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound<'a> {
    FlowDepth(usize),
    Documents(usize),
    Depth(usize),
    Nodes(usize),
    /// yaml_serde's own bounds on alias expansion and recursion, with its message.
    Aliases(&'a str),
}

/// Why a document's kind is not read.
#[derive(Debug, Clone, Copy)]
pub enum UnknownKind<'a> {
    Kind { suggestion: Option<&'a str> },
    Version { accepted: &'a [String] },
}

/// What is missing from a document.
#[derive(Debug, Clone, Copy)]
pub enum Missing<'a> {
    TypeMeta,
    /// A field the schema requires, in the object at `pointer`.
    Field {
        kind: &'a str,
        pointer: &'a str,
        field: &'a str,
    },
}

/// Which value is invalid.
#[derive(Debug, Clone, Copy)]
pub enum Invalid<'a> {
    /// What the schema accepts but the type does not, in serde's words.
    Type(&'a str),
    Schema {
        kind: &'a str,
        pointer: &'a str,
        message: &'a str,
        hint: Option<&'a str>,
    },
    Duration(&'a str),
}

/// Which name is invalid.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    ClusterSet(&'a str),
    Domain(&'a str),
    Cluster(&'a str),
    /// A cluster named like the output's fabric directory.
    TakenCluster(&'a str),
    WanPolicy(&'a str),
    Object {
        kind: &'a str,
        name: &'a str,
    },
    Namespace(&'a str),
    /// The name of a pass-through Istio object, which must also avoid mcwan's prefix.
    PassThrough {
        kind: &'a str,
        name: &'a str,
        prefix: &'a str,
    },
    /// A clusterset host a pass-through object claims.
    ClaimedHost {
        kind: &'a str,
        object: &'a str,
        host: &'a str,
        suffix: &'a str,
    },
}

/// Which derived name is too long.
#[derive(Debug, Clone, Copy)]
pub enum TooLong<'a> {
    IngressDeployment(&'a str),
    ClustersetHost { host: &'a str, export: &'a str },
}

/// What a resilience annotation should have been.
#[derive(Debug, Clone, Copy)]
pub enum Expected {
    Duration,
    RetryCount,
    /// A comma-separated list of DNS-1123 names.
    Names,
}

/// Why a cluster an allow-list names cannot call the export.
#[derive(Debug, Clone, Copy)]
pub enum NotImporter<'a> {
    Unknown,
    NoNamespace(&'a str),
    OptedOut,
}

/// Two clusters that export one service differently.
#[derive(Debug, Clone)]
pub struct Conflict<'a> {
    /// The later export's name.
    pub at: Location,
    /// `namespace/name`.
    pub service: &'a str,
    /// The later cluster, and the first in ClusterSet order.
    pub here: &'a str,
    pub first: &'a str,
    pub differences: Vec<Disagreement<'a>>,
    /// The first export's name.
    pub first_at: Location,
}

/// How two exports of one service differ: the first exporter's value, then the other's.
#[derive(Debug, Clone)]
pub enum Disagreement<'a> {
    Port(&'a ServicePort, &'a ServicePort),
    Type(&'a str, &'a str),
    Policies(Vec<String>, Vec<String>),
    Route,
    Overrides,
    Callers,
}

/// Why a regular expression is refused.
#[derive(Debug, Clone, Copy)]
pub enum Regex<'a> {
    Invalid(&'a str),
    Misread(&'a str),
}

/// Why a WANRoute rule cannot be enforced at the exporters' gateways.
#[derive(Debug, Clone)]
pub enum Unenforceable<'a> {
    /// A match of rule `rule` states `part`, which an AuthorizationPolicy cannot.
    Match {
        rule: &'a str,
        denies: bool,
        part: &'a str,
    },
    /// Deny rule `rule` overlaps the earlier allowing rule `earlier`, at `at`.
    Overlap {
        rule: &'a str,
        earlier: &'a str,
        at: Location,
    },
}

/// Why a pass-through object's clusterset host is not imported.
#[derive(Debug, Clone, Copy)]
pub enum NotImported<'a> {
    /// It sends to `host`, which `cluster` does not import.
    SendsTo {
        cluster: &'a str,
        suggestion: Option<&'a str>,
    },
    /// It claims `host`, which no cluster exports, and routes to no imported host.
    Claims,
}

/// Longest key or value a message quotes.
const QUOTED_CHARS: usize = 60;

/// At most `QUOTED_CHARS` characters of a key or value, for a message.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        None => text.to_string(),
        Some((end, _)) => format!("{}… ({} characters)", &text[..end], text.chars().count()),
    }
}

/// `` `a`, `b` ``.
#[must_use]
pub fn quoted(items: &[impl AsRef<str>]) -> String {
    items
        .iter()
        .map(|i| format!("`{}`", i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn did_you_mean_hint<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(name, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// Why `name` is not a DNS-1123 label.
fn label_hint(name: &str) -> String {
    if name.len() > 63 {
        format!(
            "a DNS-1123 label has at most 63 characters; this one has {}",
            name.len()
        )
    } else {
        "use lowercase letters, digits and `-`, starting and ending with a letter or digit"
            .to_string()
    }
}

/// A kind as the messages name it.
fn noun(kind: &str) -> &str {
    match kind {
        "WANPolicy" => "WAN policy",
        other => other,
    }
}

fn invalid_value_draft(at: Location, invalid: Invalid) -> Draft {
    match invalid {
        Invalid::Type(message) => {
            let draft = error(at, message);
            if message.contains("floating point") {
                draft.hint("write a whole number, without a decimal point")
            } else {
                draft
            }
        }
        Invalid::Schema {
            kind,
            pointer,
            message,
            hint,
        } => error(
            at,
            format!("invalid `{}` in {kind}: {message}", field_path(pointer)),
        )
        .maybe_hint(hint.map(str::to_owned)),
        Invalid::Duration(text) => error(
            at,
            format!("`{text}` is not a duration between 1ms and 24h"),
        )
        .hint("write a number and a unit: `250ms`, `1.5s`, `2m`"),
    }
}

fn invalid_name_draft(at: Option<Location>, name: Name) -> Draft {
    match name {
        Name::ClusterSet(name) => error(at, format!("ClusterSet name `{name}` is not a DNS-1123 name"))
            .hint("the name labels the fabric's classification and policy; use lowercase letters, digits, `-` and `.`"),
        Name::Domain(domain) => error(at, format!("domain `{domain}` is not a DNS name")),
        Name::Cluster(name) => error(at, format!("cluster name `{name}` is not a DNS-1123 label"))
            .hint(label_hint(name)),
        Name::TakenCluster(name) => error(
            at,
            format!("cluster name `{name}` is taken: the output's `{name}/` holds the SD-WAN fabric's files"),
        )
        .hint("rename the cluster"),
        Name::WanPolicy(name) => error(at, format!("WAN policy name `{name}` is not a DNS-1123 label"))
            .hint(format!(
                "{}; the name becomes a Gateway listener and an Istio subset",
                label_hint(name)
            )),
        Name::Object { kind, name } => error(at, format!("{kind} name `{name}` is not a DNS-1123 label"))
            .hint(label_hint(name)),
        Name::Namespace(namespace) => error(at, format!("namespace `{namespace}` is not a DNS-1123 label"))
            .hint(label_hint(namespace)),
        Name::PassThrough { kind, name, prefix } => error(
            at,
            format!("{kind} name `{name}` is not a DNS-1123 name outside the `{prefix}` prefix"),
        )
        .hint(format!("names starting with `{prefix}` are mcwan's; rename the object")),
        Name::ClaimedHost { kind, object, host, suffix } => error(
            at,
            format!("{kind} `{object}` claims `{host}`, which is not `<service>.<namespace>{suffix}` with DNS-1123 labels"),
        )
        .hint("clusterset hosts name a service and a namespace, in lowercase letters, digits and `-`"),
    }
}

fn disagreement(disagreement: &Disagreement) -> String {
    let describe =
        |p: &ServicePort| format!("`{}` {}/{}", p.istio_name(), p.port, p.protocol.istio());
    match disagreement {
        Disagreement::Port(first, other) => {
            format!("port {} vs {}", describe(first), describe(other))
        }
        Disagreement::Type(first, other) => format!("type {first} vs {other}"),
        Disagreement::Policies(first, other) => {
            format!("WAN policy `{}` vs `{}`", first.join(","), other.join(","))
        }
        Disagreement::Route => "WANRoute rules".to_string(),
        Disagreement::Overrides => {
            "resilience annotations (timeout, retries, per-try-timeout)".to_string()
        }
        Disagreement::Callers => {
            "allowed callers (allowed-clusters, allowed-service-accounts)".to_string()
        }
    }
}

fn disagreements(all: &[Disagreement]) -> String {
    all.iter().map(disagreement).collect::<Vec<_>>().join(", ")
}

diagnostics! {
    FileUnreadable => "file-unreadable",
    fn file_unreadable(at: Location, why: Unreadable) {
        match why {
            Unreadable::TooLarge { size, limit } => error(
                at,
                format!("file is {size} bytes, more than the limit of {limit} bytes"),
            )
            .hint("split the file, or raise the limit with `--max-file-bytes`"),
            Unreadable::NotUtf8 => error(at, "file is not valid UTF-8")
                .hint("YAML input must be UTF-8 encoded"),
        }
    }

    YamlSyntax => "yaml-syntax",
    fn yaml_syntax(at: Location, syntax: Syntax) {
        match syntax {
            Syntax::DuplicateKey(key) => error(at, format!("duplicate key `{}`", shortened(key)))
                .hint("a key may appear once per mapping; YAML parsers disagree on which value wins"),
            Syntax::MergeKey => error(at, "YAML merge keys (`<<`) are not supported")
                .hint("write the keys out; merge keys are YAML 1.1 only, and readers disagree on them"),
            Syntax::Parser(message) => error(at, message),
            Syntax::Tab(message) => error(at, message)
                .hint("YAML indents with spaces only; replace the tab with spaces"),
            Syntax::Unclosed { message, end } => error(
                at,
                format!("this quoted string is never closed ({message} on line {end})"),
            )
            .hint("close the quote on its line: an open quote runs on over the following lines"),
            Syntax::RunsOn { message, open } => error(at, message)
                .also(open, "a quoted string opens here and runs on to this line")
                .hint("is a closing quote missing where the string opens?"),
        }
    }

    YamlLimit => "yaml-limit",
    fn yaml_limit(at: Location, bound: Bound) {
        const DEPTH_HINT: &str =
            "Kubernetes objects need a few levels; raise the limit with `--max-depth` if this is real";
        const SPLIT_HINT: &str = "split the declarations over several files";
        let stop = |reason: String, hint: &str| {
            error(at.clone(), format!("{reason}; the file is not loaded")).hint(hint)
        };
        match bound {
            Bound::FlowDepth(max) => stop(
                format!("flow collections (`[`, `{{`) nest more than {max} levels deep"),
                DEPTH_HINT,
            ),
            Bound::Documents(max) => stop(format!("file holds more than {max} documents"), SPLIT_HINT),
            Bound::Depth(max) => stop(format!("document nests more than {max} levels deep"), DEPTH_HINT),
            Bound::Nodes(max) => stop(
                format!("file holds more than {max} keys, values and list items"),
                SPLIT_HINT,
            ),
            Bound::Aliases(detail) => error(
                at,
                format!("document is too large once its aliases are expanded, or too deep ({detail})"),
            )
            .hint("Kubernetes manifests rarely need YAML aliases; write the values out"),
        }
    }

    FileEmpty => "file-empty",
    fn file_empty(at: Location) {
        warning(at, "file holds no YAML document").hint("delete the file, or declare an object in it")
    }

    FileSymlink => "file-symlink",
    fn file_symlink(at: Location) {
        warning(at, "symbolic link not followed")
            .hint("a link could lead outside the repository; commit the file itself")
    }

    DocumentNotObject => "document-not-object",
    fn document_not_object(at: Location) {
        error(at, "document is not a mapping")
            .hint("each YAML document must be one Kubernetes-style object with `apiVersion` and `kind`")
    }

    UnknownKind => "unknown-kind",
    fn unknown_kind(at: Location, kind: &str, api_version: &str, why: UnknownKind) {
        match why {
            UnknownKind::Kind { suggestion } => {
                let draft = error(at, format!("unknown kind `{kind}` in `{api_version}`"));
                match suggestion {
                    Some(s) => draft.hint(format!("did you mean `{s}`?")),
                    None => draft.hint(
                        "mcwan reads ClusterSet, WANPolicy, WANRoute, Service, ServiceExport, Namespace, and Istio VirtualService and DestinationRule",
                    ),
                }
            }
            UnknownKind::Version { accepted } => {
                error(at, format!("`{kind}` is not served as `{api_version}`"))
                    .hint(format!("use one of {}", quoted(accepted)))
            }
        }
    }

    DeprecatedMcsGroup => "deprecated-mcs-group",
    fn deprecated_mcs_group(at: Location, api_version: &str) {
        warning(at, format!("`{api_version}` is the seed's MCS group, which no cluster serves"))
            .hint("write `multicluster.x-k8s.io/v1alpha1`; mcwan always emits that group")
    }

    MisplacedObject => "misplaced-object",
    fn misplaced_object(at: Location, kind: Kind) {
        let home = kind.placement().describe();
        error(at, format!("`{kind}` declared outside {home}"))
            .hint(format!("move this object to {home}"))
    }

    UnknownField => "unknown-field",
    fn unknown_field(at: Location, kind: &str, pointer: &str, suggestion: Option<&str>) {
        let draft = error(at, format!("unknown field `{}` in {kind}", field_path(pointer)));
        match suggestion {
            Some(s) => draft.hint(format!("did you mean `{s}`?")),
            None => draft.hint(format!("see `mcwan schema {kind}` for the fields {kind} has")),
        }
    }

    MissingField => "missing-field",
    fn missing_field(at: Location, missing: Missing) {
        match missing {
            Missing::TypeMeta => error(at, "document has no string `apiVersion` and `kind`")
                .hint("every object needs `apiVersion` and `kind`"),
            Missing::Field { kind, pointer, field } => {
                let parent = if pointer.is_empty() {
                    String::new()
                } else {
                    format!(" in `{}`", field_path(pointer))
                };
                error(at, format!("{kind} is missing field `{field}`{parent}"))
            }
        }
    }

    InvalidValue => "invalid-value",
    fn invalid_value(at: Location, invalid: Invalid) {
        invalid_value_draft(at, invalid)
    }

    InvalidName => "invalid-name",
    fn invalid_name(at: Option<Location>, name: Name) {
        invalid_name_draft(at, name)
    }

    NameTooLong => "name-too-long",
    fn name_too_long(at: Location, name: TooLong) {
        match name {
            TooLong::IngressDeployment(generated) => error(
                at,
                format!("Istio would name the ingress deployment `{generated}`, which is not a valid DNS-1123 label"),
            )
            .hint(label_hint(generated)),
            TooLong::ClustersetHost { host, export } => error(
                at,
                format!("the clusterset host `{host}` of export `{export}` has {} characters, more than 253", host.len()),
            )
            .hint("shorten the service, namespace or clusterset domain"),
        }
    }

    ReservedNamespace => "reserved-namespace",
    fn reserved_namespace(at: Option<Location>, namespace: &str) {
        error(at, format!("namespace `{namespace}` is reserved for mcwan's own objects"))
            .hint("declare services in another namespace")
    }

    ClustersetMissing => "clusterset-missing",
    fn clusterset_missing() {
        error(None, "no ClusterSet found")
            .hint("declare the topology as `kind: ClusterSet` in `clusterset.yaml` at the top of the repository")
    }

    ClustersetDuplicate => "clusterset-duplicate",
    fn clusterset_duplicate(at: Location, first: Location) {
        error(at, "a second ClusterSet")
            .also(first, "the first ClusterSet")
            .hint("a declarations repository describes exactly one clusterset")
    }

    ClusterDuplicate => "cluster-duplicate",
    fn cluster_duplicate(at: Location, cluster: &str, first: Location) {
        error(at, format!("cluster `{cluster}` is declared twice")).also(first, "first declared here")
    }

    ClusterUnknownDirectory => "cluster-unknown-directory",
    fn cluster_unknown_directory<'a>(
        at: Location,
        dir: &str,
        clusters: impl IntoIterator<Item = &'a str>,
        document: Location,
    ) {
        let hint = match did_you_mean(dir, clusters) {
            Some(s) => format!("did you mean `clusters/{s}`?"),
            None => "add the cluster to `clusterset.yaml`, or rename the directory".to_string(),
        };
        error(at, format!("directory `clusters/{dir}` names no cluster of the ClusterSet"))
            .hint(hint)
            .also(document, "declared in this directory")
    }

    ObjectDuplicate => "object-duplicate",
    fn object_duplicate(at: Location, kind: &str, name: &str, cluster: Option<&str>, first: Location) {
        let place = cluster.map(|c| format!(" in cluster `{c}`")).unwrap_or_default();
        error(at, format!("{} `{name}` is declared twice{place}", noun(kind)))
            .also(first, "first declared here")
    }

    InvalidAddress => "invalid-address",
    fn invalid_address(at: Location, cluster: &str, address: &str) {
        error(
            at,
            format!("gateway address `{address}` of cluster `{cluster}` is neither an IP address nor a DNS name"),
        )
        .hint("give the address other clusters reach this cluster's east-west ingress at, across the SD-WAN")
    }

    GatewayAddresses => "gateway-addresses",
    fn gateway_addresses(at: Location, cluster: &str, exposure: &str) {
        error(at, format!("cluster `{cluster}` lists node addresses for a {exposure} gateway"))
            .hint("only a NodePort gateway is reached at several node addresses; a LoadBalancer or ClusterIP gateway has one address")
    }

    GatewayAddressUnpinned => "gateway-address-unpinned",
    fn gateway_address_unpinned(at: Location, cluster: &str, address: &str) {
        warning(
            at,
            format!("the LoadBalancer gateway of cluster `{cluster}` cannot be pinned to the DNS name `{address}`"),
        )
        .hint("Istio pins a LoadBalancer to an IP address only (Gateway `spec.addresses`); give the IP address the load balancer must have, or make sure the name resolves to whatever the cloud assigns")
    }

    GatewayAddressUnranked => "gateway-address-unranked",
    fn gateway_address_unranked(
        at: Location,
        cluster: &str,
        address: &str,
        service: &str,
        fallback: bool,
        export: Location,
    ) {
        let why = if fallback {
            "has a fallback tunnel"
        } else {
            "has several exporters"
        };
        error(
            at,
            format!("gateway address `{address}` of cluster `{cluster}` is a DNS name, but `{service}` {why}, so importers must rank its endpoints"),
        )
        .also(export, "exported here")
        .hint("Istio orders the endpoints of STATIC ServiceEntries only; give the gateway's IP addresses (`address`, `nodeAddresses`)")
    }

    DefaultPolicyUnknown => "default-policy-unknown",
    fn default_policy_unknown<'a>(
        at: Location,
        policy: &str,
        policies: impl IntoIterator<Item = &'a str>,
    ) {
        error(at, format!("default WAN policy `{policy}` is not declared"))
            .maybe_hint(did_you_mean_hint(policy, policies))
    }

    WanpolicyPortClash => "wanpolicy-port-clash",
    fn wanpolicy_port_clash(at: Location, first: &str, name: &str, port: u16, first_at: Location) {
        error(at, format!("WAN policies `{first}` and `{name}` both use port {port}"))
            .also(first_at, format!("`{first}` uses it here"))
            .hint("the SD-WAN classifies traffic by destination port, so every policy needs its own")
    }

    WanpolicyPortReserved => "wanpolicy-port-reserved",
    fn wanpolicy_port_reserved(at: Location, name: &str, port: u16) {
        error(
            at,
            format!("port {port} of WAN policy `{name}` is in Istio's reserved range 15000-15090"),
        )
        .hint("Istio's proxies listen on these ports themselves; pick another port")
    }

    WanpolicyPortNotNodeport => "wanpolicy-port-not-nodeport",
    fn wanpolicy_port_not_nodeport(at: Location, name: &str, port: u16, clusters: &[String]) {
        error(
            at,
            format!(
                "port {port} of WAN policy `{name}` is outside the NodePort range 30000-32767, but {} expose their gateway as NodePort",
                quoted(clusters)
            ),
        )
        .hint("NodePort gateways pin each listener's nodePort to its policy port; choose a port in 30000-32767")
    }

    WanpolicyInconsistent => "wanpolicy-inconsistent",
    fn wanpolicy_inconsistent(
        at: Location,
        name: &str,
        cluster: &str,
        pointer: &str,
        here: &Value,
        global: &Value,
        global_at: Location,
    ) {
        let show = |value: &Value| match value {
            Value::Null => "absent".to_string(),
            other => format!("`{other}`"),
        };
        error(
            at,
            format!(
                "WAN policy `{name}` in cluster `{cluster}` differs from the global definition: `{}` is {} here but {} globally",
                field_path(pointer),
                show(here),
                show(global)
            ),
        )
        .also(global_at, "global definition")
        .hint("every cluster must see the same WAN policy; fix or delete the copy (mcwan emits the global one everywhere)")
    }

    WanpolicyMissingGlobal => "wanpolicy-missing-global",
    fn wanpolicy_missing_global(name: &str, copies: Vec<(&str, Location)>) {
        let clusters: Vec<&str> = copies.iter().map(|(c, _)| *c).collect();
        let mut copies = copies.into_iter();
        let first = copies.next().map(|(_, at)| at);
        let mut draft = error(
            first,
            format!(
                "WAN policy `{name}` is declared only in {} {}, so the other clusters lack it",
                if clusters.len() == 1 { "cluster" } else { "clusters" },
                quoted(&clusters)
            ),
        )
        .hint("move the definition to `policies/`, so that every cluster gets the same policy");
        for (cluster, at) in copies {
            draft = draft.also(at, format!("also in cluster `{cluster}`"));
        }
        draft
    }

    WanpolicyUnknownFallback => "wanpolicy-unknown-fallback",
    fn wanpolicy_unknown_fallback<'a>(
        at: Location,
        name: &str,
        fallback: &str,
        others: impl IntoIterator<Item = &'a str>,
    ) {
        error(
            at,
            format!("WAN policy `{name}` falls back to `{fallback}`, which is not another declared WAN policy"),
        )
        .maybe_hint(did_you_mean_hint(fallback, others))
    }

    WanpolicyTooMany => "wanpolicy-too-many",
    fn wanpolicy_too_many(at: Location, name: &str, count: usize, max: usize) {
        error(
            at,
            format!("WAN policy `{name}` is one of {count} WAN policies; a Gateway has at most {max} listeners, one per policy"),
        )
        .hint("merge policies that share a tunnel and SLA; the SD-WAN classifies by port, so each policy needs its own listener")
    }

    AnnotationInvalid => "annotation-invalid",
    fn annotation_invalid(at: Location, key: &str, value: &str, expected: Expected) {
        const RESILIENCE: &str = "durations are a number and a unit (`250ms`, `1.5s`, `2m`); retries a count from 0 to 10";
        let (expected, hint) = match expected {
            Expected::Duration => ("a duration between 1ms and 24h", RESILIENCE),
            Expected::RetryCount => ("a retry count from 0 to 10", RESILIENCE),
            Expected::Names => ("a comma-separated list of names", "separate names by commas, as in `cluster-2,cluster-3`"),
        };
        error(at, format!("`{key}: {value}` is not {expected}")).hint(hint)
    }

    ExportNoService => "export-no-service",
    fn export_no_service<'a>(
        at: Location,
        namespace: &str,
        name: &str,
        cluster: &str,
        services: impl IntoIterator<Item = &'a str>,
    ) {
        let hint = match did_you_mean(name, services) {
            Some(s) => format!("did you mean Service `{s}`? The export must have the Service's name"),
            None => format!("declare Service `{namespace}/{name}` in `clusters/{cluster}/`"),
        };
        error(
            at,
            format!("ServiceExport `{namespace}/{name}` in cluster `{cluster}` has no Service of the same name"),
        )
        .hint(hint)
    }

    ExportUnknownPolicy => "export-unknown-policy",
    fn export_unknown_policy(at: Location, export: &str, cluster: &str, policy: &str, policies: &[&str]) {
        let hint = did_you_mean_hint(policy, policies.iter().copied())
            .unwrap_or_else(|| format!("declared policies: {}", quoted(policies)));
        error(
            at,
            format!("export `{export}` in cluster `{cluster}` names unknown WAN policy `{policy}`"),
        )
        .hint(hint)
    }

    ExportNoPolicy => "export-no-policy",
    fn export_no_policy(at: Location, export: &str, cluster: &str, annotation: &str) {
        error(at, format!("export `{export}` in cluster `{cluster}` has no WAN policy"))
            .hint(format!("annotate it with `{annotation}: <policy>`, or set `defaultWANPolicy` in the ClusterSet"))
    }

    ExportAmbiguousPorts => "export-ambiguous-ports",
    fn export_ambiguous_ports(at: Location, export: &str, no_ports: bool, service: Location, annotation: &str) {
        let problem = if no_ports {
            "has no ports"
        } else {
            "has several ports"
        };
        error(
            at,
            format!("export `{export}` is ambiguous: its Service {problem}, and one gateway listener carries one port"),
        )
        .also(service, "the Service")
        .hint(format!("annotate the export with `{annotation}: <port name or number>`"))
    }

    ExportUnknownPort => "export-unknown-port",
    fn export_unknown_port(at: Location, export: &str, wanted: &str, ports: &[String], service: Location) {
        error(
            at,
            format!("export `{export}` selects port `{wanted}`, which Service `{export}` does not have"),
        )
        .also(service, "the Service's ports")
        .hint(format!("use one of {}", quoted(ports)))
    }

    ExportExternalname => "export-externalname",
    fn export_externalname(at: Location, export: &str, service: Location) {
        error(
            at,
            format!("export `{export}` selects an ExternalName Service, which has no endpoints to export"),
        )
        .also(service, "the Service is ExternalName here")
        .hint("MCS exports only ClusterIP and headless Services")
    }

    ExportUnsupportedProtocol => "export-unsupported-protocol",
    fn export_unsupported_protocol(
        at: Location,
        service: &str,
        port: u16,
        protocol: Option<&str>,
        app_protocol: Option<&str>,
    ) {
        error(
            at,
            format!(
                "port {port} of Service `{service}` is {}/{}, but east-west gateways route HTTP: the Istio versions mcwan supports read no TCPRoute a standard-channel CRD serves, and TLSRoute only from 1.30",
                protocol.unwrap_or("TCP"),
                app_protocol.unwrap_or("-")
            ),
        )
        .hint("export an HTTP, HTTP/2 or gRPC port over TCP (docs/security.md, \"Non-HTTP services\")")
    }

    AnnotationUnknown => "annotation-unknown",
    fn annotation_unknown<'a>(at: Location, annotation: &str, known: impl IntoIterator<Item = &'a str>) {
        warning(at, format!("unknown mcwan annotation `{annotation}`"))
            .maybe_hint(did_you_mean_hint(annotation, known))
    }

    McsConflict => "mcs-conflict",
    fn mcs_conflict(conflict: Conflict) {
        error(
            conflict.at,
            format!(
                "clusters `{}` and `{}` export `{}` differently: {}",
                conflict.first,
                conflict.here,
                conflict.service,
                disagreements(&conflict.differences)
            ),
        )
        .also(conflict.first_at, format!("exported by `{}` here", conflict.first))
        .hint("make the exports agree, or pass `--resolve-conflicts` to let the earlier cluster in the ClusterSet win")
    }

    McsConflictResolved => "mcs-conflict-resolved",
    fn mcs_conflict_resolved(conflict: Conflict) {
        warning(
            conflict.at,
            format!(
                "cluster `{}` overrules the export of `{}` in cluster `{}`: {}",
                conflict.first,
                conflict.service,
                conflict.here,
                disagreements(&conflict.differences)
            ),
        )
        .also(
            conflict.first_at,
            format!("cluster `{}` comes first in the ClusterSet and wins", conflict.first),
        )
    }

    SdwanTunnelNoColor => "sdwan-tunnel-no-color",
    fn sdwan_tunnel_no_color<'a>(
        at: Location,
        name: &str,
        tunnel: &str,
        colours: impl IntoIterator<Item = &'a str>,
    ) {
        let hint = match did_you_mean(tunnel, colours) {
            Some(s) => format!("did you mean the colour `{s}`? Otherwise map it in the ClusterSet: `sdwan.colors.{tunnel}: <colour>`"),
            None => format!("map it in the ClusterSet: `sdwan.colors.{tunnel}: <colour>`, e.g. `biz-internet`"),
        };
        error(at, format!("tunnel `{tunnel}` of WAN policy `{name}` has no SD-WAN colour")).hint(hint)
    }

    SdwanSlaRounded => "sdwan-sla-rounded",
    fn sdwan_sla_rounded(at: Location, name: &str, latency_ms: u64, loss_percent: u64, jitter_ms: u64) {
        warning(
            at,
            format!(
                "the SLA of WAN policy `{name}` is not whole numbers within vendor ranges; the Cisco policy uses latency {latency_ms} ms, loss {loss_percent} %, jitter {jitter_ms} ms"
            ),
        )
        .hint("Cisco SD-WAN SLA classes take whole numbers: latency and jitter 1-1000 ms, loss 1-100 %")
    }

    ImportOptOutUnknown => "import-opt-out-unknown",
    fn import_opt_out_unknown<'a>(
        at: Location,
        cluster: &str,
        skipped: &str,
        exported: impl IntoIterator<Item = &'a str>,
    ) {
        warning(
            at,
            format!("cluster `{cluster}` opts out of importing `{skipped}`, which no cluster exports"),
        )
        .maybe_hint(did_you_mean_hint(skipped, exported))
    }

    WanrouteNoExport => "wanroute-no-export",
    fn wanroute_no_export(at: Location, route: &str, cluster: &str) {
        error(at, format!("WANRoute `{route}` in cluster `{cluster}` refines no ServiceExport"))
            .hint("a WANRoute has the name and namespace of the ServiceExport it refines, in the same cluster")
    }

    WanrouteUnknownPolicy => "wanroute-unknown-policy",
    fn wanroute_unknown_policy<'a>(at: Location, policy: &str, policies: impl IntoIterator<Item = &'a str>) {
        error(at, format!("WANRoute names unknown WAN policy `{policy}`"))
            .maybe_hint(did_you_mean_hint(policy, policies))
    }

    WanrouteInvalidRegex => "wanroute-invalid-regex",
    fn wanroute_invalid_regex(at: Location, value: &str, why: Regex) {
        match why {
            Regex::Invalid(detail) => error(
                at,
                format!("`{value}` is not a valid RE2 regular expression: {detail}"),
            )
            .hint("Envoy uses RE2: no backreferences and no lookaround"),
            Regex::Misread(problem) => error(
                at,
                format!("`{value}` is not a regular expression Envoy accepts as meant: {problem}"),
            )
            .hint("Envoy uses RE2 (github.com/google/re2/wiki/Syntax)"),
        }
    }

    WanroutePathInvalid => "wanroute-path-invalid",
    fn wanroute_path_invalid(at: Location, path: &str) {
        error(at, format!("path `{path}` does not start with `/`")).hint(format!("write `/{path}`"))
    }

    WanrouteShadowedRule => "wanroute-shadowed-rule",
    fn wanroute_shadowed_rule(at: Location, rule: &str, earlier: &str, earlier_at: Location) {
        warning(
            at,
            format!("rule `{rule}` can never match: every request it matches, the earlier rule `{earlier}` takes"),
        )
        .also(earlier_at, format!("rule `{earlier}` comes first"))
        .hint("move the more specific rule before the more general one")
    }

    WanrouteDeniesAll => "wanroute-denies-all",
    fn wanroute_denies_all(at: Location, route: &str) {
        error(at, format!("WANRoute `{route}` denies every request"))
            .hint("give a rule or the default a `wanPolicy`, or remove the export")
    }

    WanrouteAnnotationIgnored => "wanroute-annotation-ignored",
    fn wanroute_annotation_ignored(at: Location, export: &str, annotated: &str, used: &[String], route: Location) {
        warning(
            at,
            format!("export `{export}` is refined by a WANRoute that never uses its annotated policy `{annotated}`"),
        )
        .also(route, "the WANRoute decides the policies")
        .hint(format!("the export uses {}; drop the annotation or use the policy in a rule", quoted(used)))
    }

    VirtualserviceUnknownImport => "virtualservice-unknown-import",
    fn virtualservice_unknown_import(at: Location, kind: &str, object: &str, host: &str, why: NotImported) {
        match why {
            NotImported::SendsTo { cluster, suggestion } => error(
                at,
                format!("{kind} `{object}` sends to `{host}`, which cluster `{cluster}` does not import"),
            )
            .hint(match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => "export the service from some cluster, and give this cluster its namespace".to_string(),
            }),
            NotImported::Claims => error(
                at,
                format!("{kind} `{object}` claims `{host}`, which no cluster exports, and routes to no imported host, so mcwan cannot tell which ports to register it on"),
            )
            .hint("route it to an imported host, such as `<service>.<namespace>` of an export"),
        }
    }

    VirtualserviceUnknownSubset => "virtualservice-unknown-subset",
    fn virtualservice_unknown_subset(at: Location, kind: &str, object: &str, subset: &str, host: &str, known: &[&str]) {
        error(
            at,
            format!("{kind} `{object}` routes to subset `{subset}` of `{host}`, which no DestinationRule defines"),
        )
        .hint(format!("subsets of `{host}`: {}", known.join(", ")))
    }

    PassthroughHostCollision => "passthrough-host-collision",
    fn passthrough_host_collision(at: Location, kind: &str, object: &str, host: &str) {
        error(
            at,
            format!("{kind} `{object}` claims `{host}`, for which mcwan generates a {kind} in the same namespace"),
        )
        .hint("Istio merges such objects unpredictably; route to the imported host from another host, or refine the export with a WANRoute")
    }

    VirtualserviceNoSubset => "virtualservice-no-subset",
    fn virtualservice_no_subset(at: Location, object: &str, host: &str) {
        error(
            at,
            format!("VirtualService `{object}` sends to `{host}` without a subset, so its requests would take the endpoints of every WAN policy, over every tunnel"),
        )
        .hint("name the subset of the WAN policy these requests must take (the DestinationRule `mcw-<service>` lists them)")
    }

    VirtualserviceHostNotRewritten => "virtualservice-host-not-rewritten",
    fn virtualservice_host_not_rewritten(at: Location, object: &str, host: &str, sent: &str) {
        error(
            at,
            format!("VirtualService `{object}` sends to `{host}` with the Host `{sent}`, which no HTTPRoute of the exporters accepts (they answer 404)"),
        )
        .hint(format!("set the Host to the destination: `headers: {{request: {{set: {{host: {host}}}}}}}` on this destination, or `rewrite: {{authority: {host}}}` on the route when it has one destination"))
    }

    VirtualserviceNoResilience => "virtualservice-no-resilience",
    fn virtualservice_no_resilience(at: Location, object: &str) {
        warning(
            at,
            format!("VirtualService `{object}` sends to clusterset hosts without its own `timeout` and `retries`; the WAN policy's, which mcwan's generated route carries, do not apply to it"),
        )
        .hint("copy `timeout` and `retries` from the generated VirtualService `mcw-<service>` of the destination")
    }

    WanrouteIngressUnenforceable => "wanroute-ingress-unenforceable",
    fn wanroute_ingress_unenforceable(at: Location, why: Unenforceable) {
        match why {
            Unenforceable::Match { rule, denies, part } => {
                let effect = if denies {
                    "denies"
                } else {
                    "allows, while the default denies"
                };
                error(
                    at,
                    format!("rule `{rule}` {effect}, and the exporters' gateways cannot state {part} in an AuthorizationPolicy"),
                )
                .hint("use exact or prefix paths and exact header values in rules that deny, or in every rule when the default denies")
            }
            Unenforceable::Overlap { rule, earlier, at: earlier_at } => error(
                at,
                format!("rule `{rule}` denies requests that the earlier rule `{earlier}` may allow; the exporters' gateways have no rule order and would deny them too"),
            )
            .also(earlier_at, format!("rule `{earlier}` comes first"))
            .hint("move the deny rule before the rule it overlaps, or make their matches differ by method, path or an exact header value"),
        }
    }

    WanrouteMatchDuplicate => "wanroute-match-duplicate",
    fn wanroute_match_duplicate(at: Location, name: &str) {
        error(at, format!("`{name}` is matched twice in one match"))
            .hint("a match names each header or query parameter once; to accept either of two values, write two matches")
    }

    DiagnosticsTruncated => "diagnostics-truncated",
    fn diagnostics_truncated(at: Location, count: usize, errors: usize) {
        warning(
            at,
            format!("{count} more problem(s) in this file not shown, {errors} of them error(s)"),
        )
        .hint("fix the problems shown and run again")
    }

    TrustDomainMissing => "trust-domain-missing",
    fn trust_domain_missing(at: Location, cluster: &str) {
        error(at, format!("cluster `{cluster}` declares no trustDomain, which mutual mode needs to name its workloads"))
            .hint("set `trustDomain` to the cluster's Istio `meshConfig.trustDomain`, distinct per cluster (docs/security.md), or set `spec.security.mode: plaintext`")
    }

    TrustDomainDuplicate => "trust-domain-duplicate",
    fn trust_domain_duplicate(at: Location, cluster: &str, trust_domain: &str, first: &str, first_at: Location) {
        error(at, format!("clusters `{first}` and `{cluster}` share the trust domain `{trust_domain}`, so gateways cannot tell their workloads apart"))
            .also(first_at, format!("`{first}` declares it here"))
            .hint("give every cluster's Istio its own `meshConfig.trustDomain`, and declare it here")
    }

    TrustDomainDefault => "trust-domain-default",
    fn trust_domain_default(at: Location, cluster: &str) {
        error(at, format!("cluster `{cluster}` uses `cluster.local`, Istio's default trust domain, which every cluster's AuthorizationPolicies read as their own"))
            .hint("set the cluster's Istio `meshConfig.trustDomain` to a name of its own, and declare it here (docs/security.md)")
    }

    PlaintextPublicTunnel => "plaintext-public-tunnel",
    fn plaintext_public_tunnel(at: Location, policy: &str, tunnel: &str) {
        warning(at, format!("WAN policy `{policy}` sends requests over tunnel `{tunnel}` in plaintext, unencrypted and with no caller identity"))
            .hint("set `spec.security.mode: mutual` in the ClusterSet, or mark the policy `private: true` if the tunnel is private to you")
    }

    AllowedClusterNotImporter => "allowed-cluster-not-importer",
    fn allowed_cluster_not_importer(at: Location, export: &str, cluster: &str, why: NotImporter) {
        let why = match why {
            NotImporter::Unknown => "is not a cluster of the ClusterSet".to_string(),
            NotImporter::NoNamespace(namespace) => format!("does not have the namespace `{namespace}`"),
            NotImporter::OptedOut => "opts out of importing it (`skipImports`)".to_string(),
        };
        error(at, format!("`{export}` allows cluster `{cluster}`, which {why}"))
            .hint("an allow-list only narrows the importing clusters; remove the cluster, or have it import the service")
    }

    CallersNeedMutualTls => "callers-need-mutual-tls",
    fn callers_need_mutual_tls(at: Location, key: &str) {
        error(at, format!("`{key}` restricts callers, which a gateway can only tell apart in mutual mode"))
            .hint("set `spec.security.mode: mutual` in the ClusterSet, or remove the annotation")
    }

    DestinationruleTlsNotMutual => "destinationrule-tls-not-mutual",
    fn destinationrule_tls_not_mutual(at: Location, rule: &str, mode: &str) {
        error(at, format!("DestinationRule `{rule}` sends a clusterset host's requests with TLS mode `{mode}`: in mutual mode they would cross the WAN without Istio mutual TLS, and the gateway refuses them"))
            .hint("set `trafficPolicy.tls: {mode: ISTIO_MUTUAL, subjectAltNames: [...]}` as mcwan's DestinationRule `mcw-<service>` does, and in no subset another mode")
    }

    EgressAddressesMissing => "egress-addresses-missing",
    fn egress_addresses_missing(at: Location, cluster: &str) {
        error(at, format!("cluster `{cluster}` sends through an egress gateway but declares none of its SD-WAN addresses"))
            .hint("list the IP addresses the egress gateway's traffic has on the SD-WAN in `egress.addresses` (dedicated nodes, or a CNI egress IP; docs/egress.md)")
    }

    EgressAddressInvalid => "egress-address-invalid",
    fn egress_address_invalid(at: Location, cluster: &str, address: &str) {
        error(at, format!("egress address `{address}` of cluster `{cluster}` is not an IP address"))
            .hint("the fabric matches the egress gateway's traffic by source prefix: give its IP addresses")
    }

    LockdownDnsGateway => "lockdown-dns-gateway",
    fn lockdown_dns_gateway(at: Location, cluster: &str, address: &str) {
        warning(at, format!("the lockdown cannot deny pods the gateway of cluster `{cluster}` at `{address}`, a DNS name"))
            .hint("NetworkPolicy matches IP blocks only: give the gateway's IP addresses, or accept that pods may reach it past the egress gateway")
    }

    VirtualserviceBypassesEgress => "virtualservice-bypasses-egress",
    fn virtualservice_bypasses_egress(at: Location, service: &str, cluster: &str) {
        error(at, format!("VirtualService `{service}` sends clusterset requests from cluster `{cluster}`'s sidecars straight to the exporters' gateways, past its egress gateway"))
            .hint("in egress gateway mode only mcwan's routes reach the WAN: remove the VirtualService, or set the cluster's `egress.mode: sidecar`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    #[test]
    fn codes_are_unique_kebab_case_and_documented() {
        let docs = REFERENCE;
        let mut seen = BTreeSet::new();
        for code in Code::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "duplicate code {text}");
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{text} is not kebab-case"
            );
            assert!(
                docs.contains(&format!("### `{text}`")),
                "{text} is not documented in docs/diagnostics.md"
            );
        }
    }

    #[test]
    fn each_explanation_is_its_own_section_only() {
        for code in Code::ALL {
            let text = code.explanation();
            let heading = format!("### `{}`", code.as_str());
            assert!(text.starts_with(&heading), "{text}");
            assert!(
                text.len() > heading.len() + 10,
                "{} explains nothing",
                code.as_str()
            );
            assert!(!text[heading.len()..].contains("\n#"), "{text}");
        }
    }

    #[test]
    fn control_characters_are_escaped_in_messages_hints_and_labels() {
        let at = Location {
            file: PathBuf::from("a.yaml"),
            line: 1,
            col: 1,
            offset: 0,
        };
        let d = cluster_unknown_directory(at.clone(), "a\u{1b}[2Jb", ["x\ny"], at);
        assert_eq!(
            d.message,
            "directory `clusters/a\\u{1b}[2Jb` names no cluster of the ClusterSet"
        );
        let d = wanpolicy_missing_global(
            "p",
            vec![
                ("one", Location::clone(&d.secondary[0].0)),
                ("t\u{7}wo", Location::clone(&d.secondary[0].0)),
            ],
        );
        assert_eq!(d.secondary[0].1, "also in cluster `t\\u{7}wo`");
    }

    #[test]
    fn long_keys_are_shortened_in_messages() {
        let at = Location {
            file: PathBuf::from("a.yaml"),
            line: 1,
            col: 1,
            offset: 0,
        };
        let d = yaml_syntax(at, Syntax::DuplicateKey(&"k".repeat(100)));
        assert_eq!(
            d.message,
            format!("duplicate key `{}… (100 characters)`", "k".repeat(60))
        );
    }
}
