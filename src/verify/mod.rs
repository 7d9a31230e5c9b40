//! `mcwan verify`: where every request goes, proven from the rendered files alone. Each
//! cluster's objects are read as its proxies would read them (`facts`, and `egress` for a
//! cluster whose requests leave through its egress gateway), the WAN hop as the fabric's
//! files classify it, and the result is compared with the declared intent: the path, its
//! encryption, and who the gateways on it admit (`callers`). It never
//! consults the plan, so a mistake in planning or a template shows up as a wrong path.
//! Pure: `lib.rs` reads the files. docs/verify.md cites the upstream rules.

pub mod callers;
pub mod egress;
pub mod facts;
pub mod intent;
pub mod request;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use callers::{Admission, Answers, Question};
use facts::{ClusterFacts, Destination, EgressHop, Ingress, ListenerTls, Outcome};
use intent::{Intent, Security, ServiceIntent};
use request::Sample;

use crate::conventions::SOURCE_CLUSTER_HEADER;

/// The fabric's side, from `sdwan/`: each class by port, and each site's flows.
#[derive(Debug, Default)]
pub struct Fabric {
    /// Port → (policy, tunnel).
    classes: BTreeMap<u16, (String, String)>,
    /// `(source, destination cluster, address, port, service)` → the source addresses the
    /// flow names (none: the source cluster's pods).
    flows: BTreeMap<FlowKey, BTreeSet<String>>,
}

/// `(source, destination cluster, address, port, service)`.
type FlowKey = (String, String, String, u16, String);

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
            let sources: BTreeSet<String> = flow["source"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            for service in flow["services"].as_array().into_iter().flatten() {
                let key = (
                    text(&flow["source"]["cluster"]),
                    text(&flow["destination"]["cluster"]),
                    text(&flow["destination"]["address"]),
                    port,
                    text(service),
                );
                self.flows.entry(key).or_insert_with(|| sources.clone());
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
    /// `mtls` or `plaintext` for the hop to the exporter (`tls <mode>` for other TLS).
    pub tls: String,
    /// The clusters whose workloads the exporter's gateway admits for this request,
    /// comma-separated: `any` in plaintext mode, where it cannot tell callers apart; `none`;
    /// or empty when no gateway was reached.
    pub callers: String,
    /// Whether the request leaves through the source cluster's egress gateway: then the
    /// tunnel, TLS and callers are those of the gateway's hop to the exporter.
    pub via_egress: bool,
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
            callers: String::new(),
            via_egress: false,
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
            out.push_str("| source | host | request | tunnel/port | exporter | result | TLS | callers | verdict |\n|---|---|---|---|---|---|---|---|---|\n");
            for r in &self.rows {
                let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
                let egress = if r.via_egress { "egress → " } else { "" };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} ({}) | {egress}{}{port} | {} | {} | {} | {} | {} |",
                    r.source,
                    r.host,
                    r.request,
                    r.class,
                    r.tunnel,
                    r.exporter,
                    r.result,
                    r.tls,
                    r.callers,
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

    /// One line per row, for a terminal: `source → host [request] → (egress →) tunnel/port →
    /// exporter → result (TLS; callers …)`, and the verdict when it is not ok.
    #[must_use]
    pub fn human(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
            let mut hop = if r.tunnel.is_empty() {
                String::new()
            } else {
                format!(" → {}{port} → {}", r.tunnel, r.exporter)
            };
            if r.via_egress {
                hop.insert_str(0, " → egress");
            }
            let _ = write!(
                out,
                "{} → {} [{}] ({}){hop} → {}",
                r.source, r.host, r.request, r.class, r.result
            );
            let notes: Vec<String> = [
                (!r.tls.is_empty()).then(|| r.tls.clone()),
                (!r.callers.is_empty()).then(|| format!("callers {}", r.callers)),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !notes.is_empty() {
                let _ = write!(out, " ({})", notes.join("; "));
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
    /// The egress gateway's workload (`ns/…/sa/…`) of each cluster in egress gateway mode
    /// that has one: the caller exporters' gateways see from it.
    egress: BTreeMap<String, String>,
    /// Admissions already found, shared by the sources: every importer's flow to the same
    /// gateway, host and request asks the same question.
    admissions: Mutex<BTreeMap<AdmissionKey, Admission>>,
    /// Answers already found, shared by the gateways and hosts whose rules name the same
    /// callers.
    answers: Answered,
}

/// The answers found per question.
type Answered = Mutex<HashMap<Question, Arc<Answers>>>;

/// The callers a problem row names that a gateway admits and should not.
const MAX_INTRUDERS_NAMED: usize = 3;

/// (exporter, port, Host, service host, the request without `x-mcwan-source-cluster`).
type AdmissionKey = (String, u16, String, String, Sample);

impl<'a> View<'a> {
    /// The clusters' rules share their equal peers first (`ClusterFacts::share_peers`).
    #[must_use]
    pub fn new(intent: &'a Intent, clusters: &'a mut [ClusterFacts], fabric: &'a Fabric) -> Self {
        let mut peers = HashSet::new();
        for cluster in clusters.iter_mut() {
            cluster.share_peers(&mut peers);
        }
        let clusters: &'a [ClusterFacts] = clusters;
        let by_name: BTreeMap<&str, &ClusterFacts> =
            clusters.iter().map(|c| (c.name.as_str(), c)).collect();
        let egress = intent
            .clusters
            .iter()
            .filter(|c| c.egress.is_some())
            .filter_map(|c| {
                let workload = by_name.get(c.name.as_str())?.egress_workload()?;
                Some((c.name.clone(), workload.to_string()))
            })
            .collect();
        View {
            intent,
            clusters,
            by_name,
            fabric,
            egress,
            admissions: Mutex::default(),
            answers: Mutex::default(),
        }
    }

    /// The rows of cluster `c` as a source: its flows, its broken hosts, and the imports
    /// the intent gives it that its objects do not route.
    #[must_use]
    pub fn rows_of(&self, c: usize) -> Vec<Row> {
        let mut rows = self.flow_rows(c, 0..self.flow_count(c));
        rows.extend(self.unrouted_rows(c));
        rows
    }

    /// How many flows cluster `c` sends.
    #[must_use]
    pub fn flow_count(&self, c: usize) -> usize {
        self.clusters[c].flows.len()
    }

    /// The rows of flows `range` of cluster `c`, in order: parts of `rows_of` that can be
    /// judged in parallel.
    #[must_use]
    pub fn flow_rows(&self, c: usize, range: Range<usize>) -> Vec<Row> {
        let (intent, fabric) = (self.intent, self.fabric);
        let cluster = &self.clusters[c];
        let mut rows = Vec::new();
        for flow in &cluster.flows[range] {
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
                egress_workloads: &self.egress,
                admissions: &self.admissions,
                answers: &self.answers,
                source: &cluster.name,
                host: &flow.host,
                sample,
                egress: None,
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
        rows
    }

    /// The rows of cluster `c` that are no flow: hosts its objects break whatever the
    /// request, and imports the intent gives it that its objects do not route.
    #[must_use]
    pub fn unrouted_rows(&self, c: usize) -> Vec<Row> {
        let (intent, cluster) = (self.intent, &self.clusters[c]);
        let mut rows = Vec::new();
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
#[derive(Clone, Copy)]
struct Context<'a> {
    intent: &'a Intent,
    by_name: &'a BTreeMap<&'a str, &'a ClusterFacts>,
    fabric: &'a Fabric,
    egress_workloads: &'a BTreeMap<String, String>,
    admissions: &'a Mutex<BTreeMap<AdmissionKey, Admission>>,
    answers: &'a Answered,
    source: &'a str,
    host: &'a str,
    sample: &'a Sample,
    /// Past the source's egress gateway: its workload (`ns/…/sa/…`), the peer of the hop
    /// to the exporter. `None`: the sidecar sends.
    egress: Option<&'a str>,
}

impl Context<'_> {
    /// Who sends the hop being judged: the sidecar, or the source's egress gateway.
    fn sender(&self) -> String {
        match self.egress {
            Some(_) => format!("`{}`'s egress gateway", self.source),
            None => "the sidecar".into(),
        }
    }

    /// The identity an exporter's gateway sees for a request for `service` from the source:
    /// its egress gateway's past it, else a workload of the service's namespace.
    fn caller(&self, service: &ServiceIntent) -> Option<String> {
        match self.egress {
            Some(workload) => {
                let trust_domain = self.intent.cluster(self.source)?.trust_domain.as_ref()?;
                Some(format!("{trust_domain}/{workload}"))
            }
            None => callers::principal(self.intent, self.source, service),
        }
    }

    /// The sidecar (or, past it, the egress gateway) answered itself. Where the
    /// declarations deny, every exporter's gateway must refuse the same request too, on
    /// every listener of the service's policies.
    fn status(&self, base: Row, status: u16) -> Row {
        let mut row = Row {
            result: format!("{status} at {}", self.sender()),
            ..base
        };
        let Some(service) = self.intent.service(self.host) else {
            return row;
        };
        row.verdict = match self.intent.expect(service, self.sample) {
            Err(why) => Verdict::Unsure(why),
            Ok(Some(policy)) => Verdict::Problem(format!(
                "the declarations send it over `{policy}`, {} answers {status}",
                self.sender()
            )),
            Ok(None) if status != 403 => Verdict::Problem(format!("denied with {status}, not 403")),
            Ok(None) => self.refused_at_gateways(service),
        };
        row
    }

    /// Whether every exporter's gateway refuses the request on every port of the service's
    /// policies (and their fallbacks), as a caller that bypasses the sidecar's route would
    /// send it: with no identity to a plain-HTTP listener, as a workload of the source
    /// cluster that names it to a mutual TLS one.
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
        let principal = self.caller(service);
        let mut claimed = self.sample.clone();
        claimed
            .headers
            .insert(SOURCE_CLUSTER_HEADER.to_string(), self.source.to_string());
        for exporter in &service.exporters {
            let Some(facts) = self.by_name.get(exporter.as_str()) else {
                continue;
            };
            for port in &ports {
                let mutual = facts.listener_tls(*port) == Some(&ListenerTls::Mutual);
                let (sample, peer) = if mutual {
                    (&claimed, principal.as_deref())
                } else {
                    (self.sample, None)
                };
                match facts.ingress_for(*port, self.host, sample, peer) {
                    Err(why) => return Verdict::Unsure(why),
                    Ok(Ingress::Backend { .. }) => {
                        return Verdict::Problem(format!(
                            "denied only at {}: `{exporter}`'s gateway serves it on port {port}",
                            self.sender()
                        ));
                    }
                    Ok(Ingress::Status(403) | Ingress::NoListener) => {}
                    Ok(Ingress::Status(other)) => {
                        return Verdict::Problem(format!(
                            "`{exporter}`'s gateway answers {other} on port {port}, {} 403",
                            self.sender()
                        ));
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
            row.result = format!("503 at {}", self.sender());
            row.verdict = Verdict::Problem(why.clone());
            return vec![row];
        }
        if let Some(hop) = &destination.egress {
            return self.via_egress(row, destination, hop);
        }
        let Some(first) = destination.endpoints.first() else {
            row.result = format!("503 at {} (no endpoint)", self.sender());
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
                "mtls".into()
            } else {
                match destination.tls_mode.as_deref() {
                    Some(mode) if mode != "DISABLE" && mode != "ISTIO_MUTUAL" => {
                        format!("tls {mode}")
                    }
                    _ => "plaintext".into(),
                }
            };
            row.verdict = self.judge(destination, &owner, endpoint, &mut row);
            rows.push(row);
        }
        rows
    }

    /// The rows of a request the sidecar sends through the source's egress gateway: the hop
    /// to it, what the gateway's policies admit, then the gateway's own routes, judged as a
    /// sidecar's are with the gateway as the peer of the hop to the exporter. Both routes
    /// retrying multiplies the attempts on a failing exporter.
    fn via_egress(&self, mut row: Row, destination: &Destination, hop: &EgressHop) -> Vec<Row> {
        row.via_egress = true;
        if let Some((result, why)) = &hop.refused {
            row.result.clone_from(result);
            row.verdict = Verdict::Problem(why.clone());
            return vec![row];
        }
        let at = format!("`{}`'s egress gateway", self.source);
        let admitted = self.egress_admission(destination, hop);
        let late = match admitted {
            Ok(late) => late,
            Err(verdict) => {
                row.result = format!("403 at {at}");
                row.verdict = verdict;
                return vec![row];
            }
        };
        let late = late.or_else(|| destination.hazards.first().cloned());
        let past = Context {
            egress: Some(&hop.workload),
            ..*self
        };
        let mut rows = match &hop.outcome {
            Outcome::Status(status) => vec![past.status(row, *status)],
            Outcome::Unsure(why) => {
                row.verdict = Verdict::Unsure(why.clone());
                vec![row]
            }
            Outcome::Routes(destinations) => {
                let mut rows = Vec::new();
                for next in destinations.iter().filter(|d| d.weight > 0) {
                    let mut more = past.destination(&row, next);
                    if destination.retries && next.retries {
                        let why = format!("retries on two hops: the sidecar retries its route to {at}, whose route retries too (the sidecar's must set `retries: {{attempts: 0}}`)");
                        for r in more.iter_mut().filter(|r| r.verdict == Verdict::Ok) {
                            r.verdict = Verdict::Problem(why.clone());
                        }
                    }
                    rows.extend(more);
                }
                rows
            }
        };
        for r in rows.iter_mut().filter(|r| r.verdict == Verdict::Ok) {
            if let Some(why) = &late {
                r.verdict = Verdict::Problem(why.clone());
            }
        }
        rows
    }

    /// In mutual mode, what the egress gateway's AuthorizationPolicies do with the request:
    /// refuse the source's workload (`Err`: the verdict, ok where the declarations refuse the
    /// request too), or admit it, and then the first caller they admit and must not, since
    /// exporters' gateways see only the egress gateway: a workload of another namespace of
    /// the cluster or of one no cluster declares, with allowed service accounts another
    /// account, or a workload of a trust domain no cluster has.
    fn egress_admission(
        &self,
        destination: &Destination,
        hop: &EgressHop,
    ) -> Result<Option<String>, Verdict> {
        let facts = self.by_name.get(self.source);
        let target = self.intent.service(self.host);
        let cluster = self.intent.cluster(self.source);
        let (Some(facts), Some(target), Some(cluster)) = (facts, target, cluster) else {
            return Ok(None);
        };
        let Some(trust_domain) = cluster
            .trust_domain
            .as_ref()
            .filter(|_| self.intent.security == Security::Mutual)
        else {
            return Ok(None);
        };
        let sample = at_gateway(self.sample, destination);
        let admits = |principal: &str| {
            facts
                .egress_admits(
                    &hop.gateway,
                    &destination.authority,
                    &sample,
                    Some(principal),
                )
                .unwrap_or(false)
        };
        let (namespace, account) = (&target.namespace, callers::account(target));
        let at = format!("`{}`'s egress gateway", self.source);
        if !admits(&format!("{trust_domain}/ns/{namespace}/sa/{account}")) {
            let refused = match self.intent.expect(target, self.sample) {
                Ok(None) => true,
                Ok(Some(_)) => !self.intent.admits(cluster, target),
                Err(why) => return Err(Verdict::Unsure(why)),
            };
            return Err(if refused {
                Verdict::Ok
            } else {
                Verdict::Problem(format!(
                    "{at} refuses `{}`'s workloads of namespace `{namespace}` (service account `{account}`)",
                    self.source
                ))
            });
        }
        let others = cluster
            .namespaces
            .iter()
            .map(String::as_str)
            .chain([callers::OTHER_NAME])
            .filter(|n| n != namespace);
        for other in others {
            if admits(&format!("{trust_domain}/ns/{other}/sa/{account}")) {
                return Ok(Some(format!("{at} admits its workloads of namespace `{other}`, which exporters' gateways cannot tell apart")));
            }
        }
        let other_account = format!("{trust_domain}/ns/{namespace}/sa/{}", callers::OTHER_NAME);
        if target.allowed_service_accounts.is_some() && admits(&other_account) {
            return Ok(Some(format!(
                "{at} admits service account `{}` of namespace `{namespace}`",
                callers::OTHER_NAME
            )));
        }
        let stranger = format!(
            "{}/ns/{namespace}/sa/{account}",
            callers::STRANGER_TRUST_DOMAIN
        );
        if admits(&stranger) {
            return Ok(Some(format!(
                "{at} admits workloads of trust domain `{}`, which no cluster has",
                callers::STRANGER_TRUST_DOMAIN
            )));
        }
        Ok(None)
    }

    /// Whether a fabric flow's source addresses are where the source sends from: its egress
    /// gateway's addresses in egress gateway mode, else none (its pods).
    fn sources_problem(
        &self,
        sources: &BTreeSet<String>,
        endpoint: &facts::Endpoint,
    ) -> Option<Verdict> {
        let expected: BTreeSet<String> = self
            .intent
            .cluster(self.source)
            .and_then(|c| c.egress.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        if *sources == expected {
            return None;
        }
        let to = format!("{}:{}", endpoint.address, endpoint.port);
        let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
        let why = match (sources.is_empty(), expected.is_empty()) {
            (true, _) => format!(
                "the fabric's flow to {to} names no source addresses, but `{}` sends it from its egress gateway's {}",
                self.source,
                list(&expected)
            ),
            (false, true) => format!(
                "the fabric's flow to {to} comes from {}, but `{}`'s sidecars send it from its pods",
                list(sources),
                self.source
            ),
            (false, false) => format!(
                "the fabric's flow to {to} comes from {}, not `{}`'s egress gateway's {}",
                list(sources),
                self.source,
                list(&expected)
            ),
        };
        Some(Verdict::Problem(why))
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
                    return Err(Verdict::Problem(format!(
                        "the declarations deny it, {} sends it",
                        self.sender()
                    )))
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

    /// The verdict on one hop to `owner`: the wire, what its gateway does with the request,
    /// whether the declarations send it there this way, and who else the gateway admits.
    fn judge(
        &self,
        destination: &Destination,
        owner: &str,
        endpoint: &facts::Endpoint,
        row: &mut Row,
    ) -> Verdict {
        let class = self.fabric.classes.get(&endpoint.port);
        row.tunnel = if owner == self.source {
            "local".into()
        } else {
            class.map_or_else(|| "unclassified".into(), |(_, t)| t.clone())
        };
        let Some(exporter) = self.by_name.get(owner) else {
            row.result = format!("{}:{} (no gateway)", endpoint.address, endpoint.port);
            return no_gateway(endpoint);
        };
        let port = endpoint.port;
        if let Some((result, why)) = self.wire(owner, exporter, port, destination, &row.tls) {
            row.result = result;
            return Verdict::Problem(why);
        }
        let target = self.intent.service(&destination.host);
        let sample = at_gateway(self.sample, destination);
        let peer = target
            .filter(|_| row.tls == "mtls")
            .and_then(|t| self.caller(t));
        let authority = &destination.authority;
        let ingress = match exporter.ingress_for(port, authority, &sample, peer.as_deref()) {
            Ok(ingress) => ingress,
            Err(why) => return Verdict::Unsure(why),
        };
        row.result = match &ingress {
            Ingress::NoListener => format!("no listener on {port}"),
            Ingress::Status(status) => format!("{status} at `{owner}`'s gateway"),
            Ingress::Backend {
                namespace,
                service,
                port,
            } => format!("{namespace}/{service}:{port}"),
        };
        let gateway_mode = self
            .intent
            .cluster(self.source)
            .is_some_and(|c| c.egress.is_some());
        // Local too: the exporter's gateway admits the cluster's egress gateway, not its
        // workloads, and the lockdown keeps them off every gateway's address.
        if gateway_mode && self.egress.is_none() {
            return Verdict::Problem(format!(
                "bypasses the egress gateway: the sidecar sends it straight to `{owner}`'s gateway, and `{}` is in egress gateway mode",
                self.source
            ));
        }
        let Some(target) = target else {
            return Verdict::Problem(format!("`{}` is no exported service", destination.host));
        };
        let mut intruders = Vec::new();
        if ingress != Ingress::NoListener {
            (row.callers, intruders) = self.callers(exporter, port, authority, &sample, target);
        }
        let expected = match self.declared(destination, target) {
            Ok(expected) => expected,
            Err(verdict) => return verdict,
        };
        if self.intent.security == Security::Mutual && row.tls != "mtls" {
            return Verdict::Problem(format!(
                "mutual mode requires Istio mutual TLS to `{owner}`'s gateway, {} sends {}",
                self.sender(),
                row.tls
            ));
        }
        let hop = self.hop_problem(destination, owner, exporter, endpoint, &expected, row);
        if let Some(problem) = hop {
            return problem;
        }
        match self.at_ingress(&ingress, target, owner, &row.result) {
            Verdict::Ok => {}
            verdict => return verdict,
        }
        // A wide rule admits many callers: the first few say which rule it is.
        let more = intruders.len().saturating_sub(MAX_INTRUDERS_NAMED);
        intruders.truncate(MAX_INTRUDERS_NAMED);
        match (intruders.is_empty(), more) {
            (true, _) => Verdict::Ok,
            (false, 0) => Verdict::Problem(format!(
                "`{owner}`'s gateway admits {}",
                intruders.join(", ")
            )),
            (false, more) => Verdict::Problem(format!(
                "`{owner}`'s gateway admits {}, and {more} more callers the declarations do not",
                intruders.join(", ")
            )),
        }
    }

    /// Whether the sidecar's TLS and the listener's agree, so that an HTTP request reaches
    /// the gateway at all: `(result, why)` when not. Istio mutual TLS to a plain-HTTP
    /// listener hands TLS bytes to its HTTP codec; plaintext to a TLS listener fails the
    /// handshake; a listener neither mode renders is not modelled, so it is a problem rather
    /// than trusted; and the sidecar accepts the gateway only when its certificate names an
    /// identity the DestinationRule lists (`subjectAltNames`, cluster_tls.go:421-425 /
    /// 455-460 at 1.26.0 / 1.30.3).
    fn wire(
        &self,
        owner: &str,
        exporter: &ClusterFacts,
        port: u16,
        destination: &Destination,
        tls: &str,
    ) -> Option<(String, String)> {
        let listener = exporter.listener_tls(port)?;
        let sender = self.sender();
        let refused = format!("TLS handshake fails at `{owner}`'s gateway");
        let (result, why) = match (listener, tls) {
            (ListenerTls::Other(what), _) => (
                format!("`{owner}`'s listener on {port} is not modelled"),
                format!("`{owner}`'s listener on port {port} is {what}: neither security mode renders it, and verify cannot tell what it admits"),
            ),
            (ListenerTls::Plain, "plaintext") => return None,
            (ListenerTls::Plain, "mtls") => (
                format!("TLS bytes at `{owner}`'s plain-HTTP listener"),
                format!("{sender} sends Istio mutual TLS to `{owner}`'s plain-HTTP listener on port {port}"),
            ),
            (ListenerTls::Mutual, "plaintext") if self.intent.security == Security::Mutual => (
                refused,
                format!("mutual mode requires Istio mutual TLS to `{owner}`'s gateway, {sender} sends plaintext, which its mutual TLS listener on port {port} refuses"),
            ),
            (ListenerTls::Mutual, "plaintext") => (
                refused,
                format!("{sender} sends plaintext to `{owner}`'s mutual TLS listener on port {port}"),
            ),
            (ListenerTls::Mutual, "mtls") => {
                let trust_domain = self.intent.cluster(owner)?.trust_domain.as_ref()?;
                let workload = exporter.gateway_workload(port)?;
                let identity = format!("spiffe://{trust_domain}/{workload}");
                let names = &destination.subject_alt_names;
                if names.is_empty() || names.contains(&identity) {
                    return None;
                }
                (
                    refused,
                    format!("{sender} accepts only {} as `{owner}`'s gateway, whose certificate names {identity}", names.join(", ")),
                )
            }
            (_, other) => (
                refused,
                format!("{sender} originates {other}, which `{owner}`'s listener on port {port} does not take"),
            ),
        };
        Some((result, why))
    }

    /// Who `exporter`'s gateway admits for the request: the callers column, and the callers
    /// it admits that the declarations do not. In plaintext mode any caller, which is no
    /// problem. On a plain-HTTP listener no caller has an identity, so it admits any or
    /// none (and mutual mode's problem with it is the TLS). On a mutual TLS listener, what
    /// `callers::Answers` finds, asked once for every source that sends the same, and once
    /// for every gateway and host whose rules name the same callers.
    fn callers(
        &self,
        exporter: &ClusterFacts,
        port: u16,
        authority: &str,
        sample: &Sample,
        target: &ServiceIntent,
    ) -> (String, Vec<String>) {
        if self.intent.security != Security::Mutual {
            return ("any".into(), Vec::new());
        }
        if exporter.listener_tls(port) != Some(&ListenerTls::Mutual) {
            let any = exporter.admits(port, authority, sample, None) == Some(true);
            return (if any { "any" } else { "none" }.into(), Vec::new());
        }
        let mut request = sample.clone();
        request.headers.remove(SOURCE_CLUSTER_HEADER);
        let key = (
            exporter.name.clone(),
            port,
            authority.to_string(),
            self.intent.host(target),
            request,
        );
        let cached = self
            .admissions
            .lock()
            .ok()
            .and_then(|a| a.get(&key).cloned());
        let admission = cached.unwrap_or_else(|| {
            let found = exporter
                .peer_rules(port, authority, &key.4)
                .map(|rules| self.answers(Question::new(rules, &key.4, target)))
                .map(|answers| answers.admission(self.intent, target))
                .unwrap_or_default();
            if let Ok(mut admissions) = self.admissions.lock() {
                admissions.insert(key, found.clone());
            }
            found
        });
        let callers = if admission.clusters.is_empty() {
            "none".into()
        } else {
            admission.clusters.join(",")
        };
        (callers, admission.intruders)
    }

    /// What the rules answer to `question`, asked once for every gateway and host that
    /// asks the same.
    fn answers(&self, question: Question) -> Arc<Answers> {
        let cached = self
            .answers
            .lock()
            .ok()
            .and_then(|a| a.get(&question).cloned());
        cached.unwrap_or_else(|| {
            let found = Arc::new(Answers::of(self.intent, &question, self.egress_workloads));
            if let Ok(mut answers) = self.answers.lock() {
                answers.insert(question, Arc::clone(&found));
            }
            found
        })
    }

    /// The policy the declarations send the request over, when the source imports the
    /// service and the destination's endpoints are safe to order.
    fn declared(
        &self,
        destination: &Destination,
        target: &ServiceIntent,
    ) -> Result<String, Verdict> {
        if !self
            .intent
            .cluster(self.source)
            .is_some_and(|c| self.intent.imports(c, target))
        {
            return Err(Verdict::Problem(format!(
                "cluster `{}` does not import `{}/{}`",
                self.source, target.namespace, target.name
            )));
        }
        let expected = self.expected_policy(destination, target)?;
        if !self.intent.policies.contains_key(&expected) {
            return Err(Verdict::Problem(format!("unknown WAN policy `{expected}`")));
        }
        if let Some(problem) = endpoints_problem(destination) {
            return Err(problem);
        }
        Ok(expected)
    }

    /// A problem of the hop itself: an address the gateway does not request, another port
    /// than the policy's, a fallback out of order, a flow or a class the fabric lacks.
    fn hop_problem(
        &self,
        destination: &Destination,
        owner: &str,
        exporter: &ClusterFacts,
        endpoint: &facts::Endpoint,
        expected: &str,
        row: &Row,
    ) -> Option<Verdict> {
        let policy = self.intent.policies.get(expected)?;
        let service = self.intent.service(&destination.host)?;
        let local = owner == self.source;
        if !exporter.pinned(endpoint.port, &endpoint.address) {
            return Some(Verdict::Problem(format!(
                "`{owner}`'s LoadBalancer gateway does not request {}, which importers send to",
                endpoint.address
            )));
        }
        if endpoint.port != policy.port {
            return Some(Verdict::Problem(format!(
                "takes port {} ({}) before `{expected}`'s port {}",
                endpoint.port, row.tunnel, policy.port
            )));
        }
        if let Some(problem) = fallback_out_of_order(destination, policy.port, expected) {
            return Some(problem);
        }
        if !local {
            let flow = self.fabric.flows.get(&(
                self.source.to_string(),
                owner.to_string(),
                endpoint.address.clone(),
                endpoint.port,
                format!("{}/{}", service.namespace, service.name),
            ));
            let Some(sources) = flow else {
                return Some(Verdict::Problem(format!(
                    "the fabric lists no flow to {}:{} for it",
                    endpoint.address, endpoint.port
                )));
            };
            if let Some(problem) = self.sources_problem(sources, endpoint) {
                return Some(problem);
            }
        }
        let class = self.fabric.classes.get(&endpoint.port);
        if !local
            && class.is_none_or(|(p, _)| {
                p != expected && policy.fallback.as_deref() != Some(p.as_str())
            })
        {
            return Some(Verdict::Problem(format!(
                "port {} is not `{expected}`'s class in the fabric",
                endpoint.port
            )));
        }
        None
    }

    /// Whether what `owner`'s gateway does (`result`) is what the declarations say: 403 for
    /// a request the WANRoute denies, or, in mutual mode, from a cluster the service's
    /// allowed clusters leave out; else the service's backend.
    fn at_ingress(
        &self,
        ingress: &Ingress,
        target: &intent::ServiceIntent,
        owner: &str,
        result: &str,
    ) -> Verdict {
        let admitted = self.intent.security != Security::Mutual
            || self
                .intent
                .cluster(self.source)
                .is_some_and(|c| self.intent.admits(c, target));
        let refused = match self.intent.expect(target, self.sample) {
            Ok(None) => Some(format!("`{}/{}` denies it", target.namespace, target.name)),
            Ok(Some(_)) if !admitted => Some(format!(
                "`{}/{}` does not admit `{}`'s callers",
                target.namespace, target.name, self.source
            )),
            Ok(Some(_)) => None,
            Err(why) => return Verdict::Unsure(why),
        };
        match (ingress, refused) {
            (Ingress::Status(403), Some(_)) => Verdict::Ok,
            (_, Some(why)) => Verdict::Problem(format!("{why}, `{owner}`'s gateway does not")),
            (
                Ingress::Backend {
                    namespace,
                    service,
                    port,
                },
                None,
            ) if *namespace == target.namespace
                && *service == target.name
                && *port == target.port =>
            {
                Verdict::Ok
            }
            (Ingress::Backend { .. }, None) => Verdict::Problem(format!(
                "reaches {} instead of `{}/{}:{}`",
                result, target.namespace, target.name, target.port
            )),
            (_, None) => Verdict::Problem(format!(
                "declared to reach `{}/{}`, gets {}",
                target.namespace, target.name, result
            )),
        }
    }
}

/// The request as the exporter's gateway sees it: with the headers the route sets.
fn at_gateway(sample: &Sample, destination: &Destination) -> Sample {
    let mut sample = sample.clone();
    sample.headers.extend(
        destination
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    sample
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
