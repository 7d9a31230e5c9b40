//! `mcwan verify`: where every request goes, proven from the rendered files alone. Each
//! cluster's objects are read as its proxies would read them (`facts`), the WAN hop as the
//! fabric's files classify it, and the result is compared with the declared intent. It
//! never consults the plan, so a mistake in planning or a template shows up as a wrong path.
//! Pure: `lib.rs` reads the files. docs/verify.md cites the upstream rules.

pub mod facts;
pub mod intent;
pub mod request;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use facts::{ClusterFacts, Destination, Ingress, Outcome};
use intent::{Intent, ServiceIntent};
use request::Sample;

/// The fabric's side, from `sdwan/`: each class by port, and each site's flows.
#[derive(Debug, Default)]
pub struct Fabric {
    /// Port → (policy, tunnel).
    classes: BTreeMap<u16, (String, String)>,
    /// `(source, destination cluster, address, port, service)`.
    flows: BTreeSet<(String, String, String, u16, String)>,
}

impl Fabric {
    /// Adds a parsed `sdwan/classes.yaml` or `sdwan/sites/<cluster>/flows.yaml`.
    pub fn add(&mut self, document: &Value) {
        for class in document["classes"].as_array().into_iter().flatten() {
            if let Some(port) = class["port"].as_u64().and_then(|p| u16::try_from(p).ok()) {
                let name = |k: &str| class[k].as_str().unwrap_or_default().to_string();
                self.classes.insert(port, (name("policy"), name("tunnel")));
            }
        }
        for flow in document["flows"].as_array().into_iter().flatten() {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let port = flow["destination"]["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_default();
            for service in flow["services"].as_array().into_iter().flatten() {
                self.flows.insert((
                    text(&flow["source"]["cluster"]),
                    text(&flow["destination"]["cluster"]),
                    text(&flow["destination"]["address"]),
                    port,
                    text(service),
                ));
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "why", rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Problem(String),
    Unsure(String),
}

/// One line of the reachability matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub source: String,
    pub host: String,
    pub class: String,
    pub request: String,
    /// The tunnel of the first-priority endpoint's port, `local`, or empty.
    pub tunnel: String,
    pub port: Option<u16>,
    pub exporter: String,
    /// `ns/service:port`, or a status and where it was answered.
    pub result: String,
    /// `mtls` or `plaintext` for the hop to the exporter.
    pub tls: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Row {
    /// A row with no hop and no result yet, judged ok until a check says otherwise.
    fn new(source: &str, host: &str, class: &str, request: String) -> Self {
        Row {
            source: source.to_string(),
            host: host.to_string(),
            class: class.to_string(),
            request,
            tunnel: String::new(),
            port: None,
            exporter: String::new(),
            result: String::new(),
            tls: String::new(),
            verdict: Verdict::Ok,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    #[must_use]
    pub fn problems(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Problem(_)))
            .count()
    }

    #[must_use]
    pub fn unsure(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Unsure(_)))
            .count()
    }

    /// The matrix as a Markdown table, aggregated by (source, exporter, tunnel, verdict)
    /// once it has more than `limit` rows.
    #[must_use]
    pub fn markdown(&self, limit: usize) -> String {
        let mut out = String::new();
        if self.rows.len() <= limit {
            out.push_str("| source | host | request | tunnel/port | exporter | result | TLS | verdict |\n|---|---|---|---|---|---|---|---|\n");
            for r in &self.rows {
                let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} ({}) | {}{port} | {} | {} | {} | {} |",
                    r.source,
                    r.host,
                    r.request,
                    r.class,
                    r.tunnel,
                    r.exporter,
                    r.result,
                    r.tls,
                    verdict_text(&r.verdict)
                );
            }
            return out;
        }
        let mut groups: BTreeMap<(&str, &str, &str, &str), usize> = BTreeMap::new();
        for r in &self.rows {
            let verdict = match r.verdict {
                Verdict::Ok => "ok",
                Verdict::Problem(_) => "problem",
                Verdict::Unsure(_) => "unsure",
            };
            *groups
                .entry((&r.source, &r.exporter, &r.tunnel, verdict))
                .or_default() += 1;
        }
        let _ = writeln!(
            out,
            "{} flows, aggregated; `mcwan verify --format json` lists each.\n",
            self.rows.len()
        );
        out.push_str("| source | exporter | tunnel | verdict | flows |\n|---|---|---|---|---|\n");
        for ((source, exporter, tunnel, verdict), count) in groups {
            let _ = writeln!(
                out,
                "| {source} | {exporter} | {tunnel} | {verdict} | {count} |"
            );
        }
        out
    }

    /// One line per row, for a terminal: `source → host [request] → tunnel/port → exporter →
    /// result`, and the verdict when it is not ok.
    #[must_use]
    pub fn human(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
            let hop = if r.tunnel.is_empty() {
                String::new()
            } else {
                format!(" → {}{port} → {}", r.tunnel, r.exporter)
            };
            let _ = write!(
                out,
                "{} → {} [{}] ({}){hop} → {}",
                r.source, r.host, r.request, r.class, r.result
            );
            if !r.tls.is_empty() {
                let _ = write!(out, " ({})", r.tls);
            }
            match &r.verdict {
                Verdict::Ok => out.push('\n'),
                v => {
                    let _ = writeln!(out, "\n  {}", verdict_text(v));
                }
            }
        }
        let _ = writeln!(
            out,
            "{} flows, {} problems, {} unsure",
            self.rows.len(),
            self.problems(),
            self.unsure()
        );
        out
    }

    /// The problem rows only, as `human` prints them, for a render that refuses.
    #[must_use]
    pub fn human_problems(&self) -> String {
        Report {
            rows: self
                .rows
                .iter()
                .filter(|r| matches!(r.verdict, Verdict::Problem(_)))
                .cloned()
                .collect(),
        }
        .human()
    }

    /// GitHub workflow commands for the problems (errors) and unsure rows (warnings).
    #[must_use]
    pub fn github(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            let (level, why) = match &r.verdict {
                Verdict::Ok => continue,
                Verdict::Problem(why) => ("error", why),
                Verdict::Unsure(why) => ("warning", why),
            };
            let _ = writeln!(
                out,
                "::{level} title=verify::{} → {} [{}]: {why}",
                r.source, r.host, r.request
            );
        }
        out
    }
}

/// Everything the verifier compares one cluster's flows with: the intent, every cluster's
/// facts by name (for the exporters' gateways) and the fabric.
pub struct View<'a> {
    intent: &'a Intent,
    clusters: &'a [ClusterFacts],
    by_name: BTreeMap<&'a str, &'a ClusterFacts>,
    fabric: &'a Fabric,
}

impl<'a> View<'a> {
    #[must_use]
    pub fn new(intent: &'a Intent, clusters: &'a [ClusterFacts], fabric: &'a Fabric) -> Self {
        let by_name = clusters.iter().map(|c| (c.name.as_str(), c)).collect();
        View {
            intent,
            clusters,
            by_name,
            fabric,
        }
    }

    /// The rows of cluster `c` as a source: its flows, its broken hosts, and the imports
    /// the intent gives it that its objects do not route.
    #[must_use]
    pub fn rows_of(&self, c: usize) -> Vec<Row> {
        let (intent, fabric) = (self.intent, self.fabric);
        let cluster = &self.clusters[c];
        let mut rows = Vec::new();
        for flow in &cluster.flows {
            let request = flow
                .sample
                .as_ref()
                .map_or_else(|_| "-".into(), Sample::to_string);
            let base = Row::new(&cluster.name, &flow.host, &flow.class, request);
            let sample = match (&flow.sample, &flow.outcome) {
                (_, Outcome::Unsure(why)) | (Err(why), _) => {
                    rows.push(Row {
                        verdict: Verdict::Unsure(why.clone()),
                        ..base
                    });
                    continue;
                }
                (Ok(sample), _) => sample,
            };
            let ctx = Context {
                intent,
                by_name: &self.by_name,
                fabric,
                source: &cluster.name,
                host: &flow.host,
                sample,
            };
            match &flow.outcome {
                Outcome::Status(status) => rows.push(ctx.status(base, *status)),
                Outcome::Routes(destinations) => {
                    for destination in destinations.iter().filter(|d| d.weight > 0) {
                        rows.extend(ctx.destination(&base, destination));
                    }
                }
                Outcome::Unsure(_) => {}
            }
        }
        for (host, why) in &cluster.defects {
            let mut row = Row::new(&cluster.name, host, "any request", "-".into());
            row.verdict = Verdict::Problem(why.clone());
            rows.push(row);
        }
        let Some(importer) = intent.cluster(&cluster.name) else {
            return rows;
        };
        let routed: BTreeSet<&str> = cluster.flows.iter().map(|f| f.host.as_str()).collect();
        for service in intent
            .services
            .iter()
            .filter(|s| intent.imports(importer, s))
        {
            let host = intent.host(service);
            if !routed.contains(host.as_str()) {
                let mut row = Row::new(&cluster.name, &host, "any request", "-".into());
                row.result = "no route".into();
                row.verdict = Verdict::Problem(format!(
                    "cluster `{}` imports `{}/{}` but its objects do not route `{host}`",
                    cluster.name, service.namespace, service.name
                ));
                rows.push(row);
            }
        }
        rows
    }
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Ok => "ok".into(),
        Verdict::Problem(why) => format!("problem: {why}"),
        Verdict::Unsure(why) => format!("unsure: {why}"),
    }
}

/// One flow's source, host and sample, and what to compare it with.
struct Context<'a> {
    intent: &'a Intent,
    by_name: &'a BTreeMap<&'a str, &'a ClusterFacts>,
    fabric: &'a Fabric,
    source: &'a str,
    host: &'a str,
    sample: &'a Sample,
}

impl Context<'_> {
    /// The sidecar answered itself. Where the declarations deny, every exporter's gateway
    /// must refuse the same request too, on every listener of the service's policies.
    fn status(&self, base: Row, status: u16) -> Row {
        let mut row = Row {
            result: format!("{status} at the sidecar"),
            ..base
        };
        let Some(service) = self.intent.service(self.host) else {
            return row;
        };
        row.verdict = match self.intent.expect(service, self.sample) {
            Err(why) => Verdict::Unsure(why),
            Ok(Some(policy)) => Verdict::Problem(format!(
                "the declarations send it over `{policy}`, the sidecar answers {status}"
            )),
            Ok(None) if status != 403 => Verdict::Problem(format!("denied with {status}, not 403")),
            Ok(None) => self.refused_at_gateways(service),
        };
        row
    }

    /// Whether every exporter's gateway refuses the request on every port of the service's
    /// policies (and their fallbacks), as a caller that bypasses the sidecar would send it.
    fn refused_at_gateways(&self, service: &ServiceIntent) -> Verdict {
        let ports: BTreeSet<u16> = service
            .policies
            .iter()
            .flat_map(|p| {
                let policy = self.intent.policies.get(p);
                let fallback = policy
                    .and_then(|p| p.fallback.as_ref())
                    .and_then(|f| self.intent.policies.get(f));
                policy.into_iter().chain(fallback).map(|p| p.port)
            })
            .collect();
        for exporter in &service.exporters {
            let Some(facts) = self.by_name.get(exporter.as_str()) else {
                continue;
            };
            for port in &ports {
                match facts.ingress_for(*port, self.host, self.sample) {
                    Err(why) => return Verdict::Unsure(why),
                    Ok(Ingress::Backend { .. }) => {
                        return Verdict::Problem(format!("denied only at the sidecar: `{exporter}`'s gateway serves it on port {port}"));
                    }
                    Ok(Ingress::Status(403) | Ingress::NoListener) => {}
                    Ok(Ingress::Status(other)) => {
                        return Verdict::Problem(format!("`{exporter}`'s gateway answers {other} on port {port}, the sidecar 403"));
                    }
                }
            }
        }
        Verdict::Ok
    }

    /// One row per exporter cluster among the destination's first-priority endpoints.
    fn destination(&self, base: &Row, destination: &Destination) -> Vec<Row> {
        let mut row = base.clone();
        if let Some(why) = &destination.broken {
            row.result = "503 at the sidecar".into();
            row.verdict = Verdict::Problem(why.clone());
            return vec![row];
        }
        let Some(first) = destination.endpoints.first() else {
            row.result = "503 at the sidecar (no endpoint)".into();
            row.verdict =
                Verdict::Problem(format!("no endpoint of `{}` is selected", destination.host));
            return vec![row];
        };
        let primary: Vec<_> = destination
            .endpoints
            .iter()
            .filter(|e| e.priority == first.priority)
            .collect();
        let mut owners: BTreeMap<String, Vec<&facts::Endpoint>> = BTreeMap::new();
        for endpoint in &primary {
            let owner = self
                .intent
                .owner(&endpoint.address)
                .map_or_else(|| format!("? {}", endpoint.address), |c| c.name.clone());
            owners.entry(owner).or_default().push(endpoint);
        }
        let mut rows = Vec::new();
        for (owner, endpoints) in owners {
            let endpoint = endpoints[0];
            let mut row = base.clone();
            row.exporter.clone_from(&owner);
            row.port = Some(endpoint.port);
            row.tls = if endpoints.iter().all(|e| e.mutual_tls) {
                "mtls"
            } else {
                "plaintext"
            }
            .into();
            row.verdict = self.judge(destination, &owner, endpoint, &mut row);
            rows.push(row);
        }
        rows
    }

    /// The policy the request must take: the declared route's for the service's own host;
    /// the subset a user route names for another host (it must be one the export uses).
    fn expected_policy(
        &self,
        destination: &Destination,
        target: &intent::ServiceIntent,
    ) -> Result<String, Verdict> {
        let expected = if destination.host == self.host {
            match self.intent.expect(target, self.sample) {
                Ok(Some(policy)) => Some(policy.to_string()),
                Ok(None) => {
                    return Err(Verdict::Problem(
                        "the declarations deny it, the sidecar sends it".into(),
                    ))
                }
                Err(why) => return Err(Verdict::Unsure(why)),
            }
        } else {
            destination
                .subset
                .clone()
                .filter(|s| target.policies.contains(s))
        };
        expected.ok_or_else(|| {
            Verdict::Problem(format!(
                "it takes no WAN policy `{}/{}` is exported with",
                target.namespace, target.name
            ))
        })
    }

    fn judge(
        &self,
        destination: &Destination,
        owner: &str,
        endpoint: &facts::Endpoint,
        row: &mut Row,
    ) -> Verdict {
        let class = self.fabric.classes.get(&endpoint.port);
        let local = owner == self.source;
        row.tunnel = if local {
            "local".into()
        } else {
            class.map_or_else(|| "unclassified".into(), |(_, t)| t.clone())
        };
        let Some(exporter) = self.by_name.get(owner) else {
            row.result = format!("{}:{} (no gateway)", endpoint.address, endpoint.port);
            return no_gateway(endpoint);
        };
        let ingress = match exporter.ingress_for(endpoint.port, &destination.authority, self.sample)
        {
            Ok(ingress) => ingress,
            Err(why) => return Verdict::Unsure(why),
        };
        row.result = match &ingress {
            Ingress::NoListener => format!("no listener on {}", endpoint.port),
            Ingress::Status(status) => format!("{status} at `{owner}`'s gateway"),
            Ingress::Backend {
                namespace,
                service,
                port,
            } => format!("{namespace}/{service}:{port}"),
        };
        let Some(target) = self.intent.service(&destination.host) else {
            return Verdict::Problem(format!("`{}` is no exported service", destination.host));
        };
        if !self
            .intent
            .cluster(self.source)
            .is_some_and(|c| self.intent.imports(c, target))
        {
            return Verdict::Problem(format!(
                "cluster `{}` does not import `{}/{}`",
                self.source, target.namespace, target.name
            ));
        }
        let expected = match self.expected_policy(destination, target) {
            Ok(expected) => expected,
            Err(verdict) => return verdict,
        };
        let Some(policy) = self.intent.policies.get(&expected) else {
            return Verdict::Problem(format!("unknown WAN policy `{expected}`"));
        };
        if let Some(problem) = endpoints_problem(destination) {
            return problem;
        }
        if row.tls == "mtls" {
            return Verdict::Problem(format!(
                "the sidecar sends Istio mutual TLS to `{owner}`'s plain-HTTP listener"
            ));
        }
        if !exporter.pinned(endpoint.port, &endpoint.address) {
            return Verdict::Problem(format!(
                "`{owner}`'s LoadBalancer gateway does not request {}, which importers send to",
                endpoint.address
            ));
        }
        if endpoint.port != policy.port {
            return Verdict::Problem(format!(
                "takes port {} ({}) before `{expected}`'s port {}",
                endpoint.port, row.tunnel, policy.port
            ));
        }
        if let Some(problem) = fallback_out_of_order(destination, policy.port, &expected) {
            return problem;
        }
        if !local
            && !self.fabric.flows.contains(&(
                self.source.to_string(),
                owner.to_string(),
                endpoint.address.clone(),
                endpoint.port,
                format!("{}/{}", target.namespace, target.name),
            ))
        {
            return Verdict::Problem(format!(
                "the fabric lists no flow to {}:{} for it",
                endpoint.address, endpoint.port
            ));
        }
        if !local
            && class.is_none_or(|(p, _)| {
                *p != expected && policy.fallback.as_deref() != Some(p.as_str())
            })
        {
            return Verdict::Problem(format!(
                "port {} is not `{expected}`'s class in the fabric",
                endpoint.port
            ));
        }
        self.at_ingress(&ingress, target, owner, &row.result)
    }

    /// Whether what `owner`'s gateway does (`result`) is what the declarations say.
    fn at_ingress(
        &self,
        ingress: &Ingress,
        target: &intent::ServiceIntent,
        owner: &str,
        result: &str,
    ) -> Verdict {
        let denied = match self.intent.expect(target, self.sample) {
            Ok(policy) => policy.is_none(),
            Err(why) => return Verdict::Unsure(why),
        };
        match (ingress, denied) {
            (Ingress::Status(403), true) => Verdict::Ok,
            (_, true) => Verdict::Problem(format!(
                "`{}/{}` denies it, `{owner}`'s gateway does not",
                target.namespace, target.name
            )),
            (
                Ingress::Backend {
                    namespace,
                    service,
                    port,
                },
                false,
            ) if *namespace == target.namespace
                && *service == target.name
                && *port == target.port =>
            {
                Verdict::Ok
            }
            (Ingress::Backend { .. }, false) => Verdict::Problem(format!(
                "reaches {} instead of `{}/{}:{}`",
                result, target.namespace, target.name, target.port
            )),
            (_, false) => Verdict::Problem(format!(
                "declared to reach `{}/{}`, gets {}",
                target.namespace, target.name, result
            )),
        }
    }
}

/// A problem of the destination's endpoints as a whole: their order depends on what the
/// objects do not show, or a setting turns one failure into an outage.
fn endpoints_problem(destination: &Destination) -> Option<Verdict> {
    let tiers: BTreeSet<(&str, u16)> = destination
        .endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.port))
        .collect();
    if let Some(why) = destination
        .order_unsure
        .as_ref()
        .filter(|_| tiers.len() > 1)
    {
        return Some(Verdict::Problem(format!("the endpoints are {why}")));
    }
    destination
        .hazards
        .first()
        .map(|hazard| Verdict::Problem(hazard.clone()))
}

/// The verdict on an endpoint that is no gateway of the clusterset.
fn no_gateway(endpoint: &facts::Endpoint) -> Verdict {
    // A workload of the source's own mesh, reached past every gateway: without Istio
    // mutual TLS, a STRICT PeerAuthentication refuses it (docs/mesh.md §3).
    if endpoint.address.ends_with(".svc.cluster.local") && !endpoint.mutual_tls {
        return Verdict::Problem(format!(
            "endpoint {} is a workload of the mesh reached in plaintext (no `security.istio.io/tlsMode: istio`), which STRICT mTLS refuses",
            endpoint.address
        ));
    }
    Verdict::Problem(format!(
        "endpoint {} is no gateway of the clusterset",
        endpoint.address
    ))
}

/// A problem when an endpoint off the policy's port (a fallback) is not ordered after
/// every endpoint on it.
fn fallback_out_of_order(destination: &Destination, port: u16, expected: &str) -> Option<Verdict> {
    let primary_last = destination
        .endpoints
        .iter()
        .filter(|e| e.port == port)
        .map(|e| e.priority)
        .max();
    let other_first = destination
        .endpoints
        .iter()
        .filter(|e| e.port != port)
        .map(|e| e.priority)
        .min();
    match (primary_last, other_first) {
        (Some(last), Some(first)) if first <= last => Some(Verdict::Problem(format!(
            "a fallback endpoint has priority {first}, not after every `{expected}` endpoint"
        ))),
        _ => None,
    }
}
