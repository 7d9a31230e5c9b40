//! Who an exporter's gateway admits for one request, found by asking its authorization
//! rules about sample callers: a workload of each cluster (its egress gateway, for a cluster
//! in egress gateway mode), of other namespaces and service accounts, one that names another
//! cluster than its own, and a stranger (`Answers`, asked once per `Question`, which many
//! gateways and hosts share). Compared with the callers the declarations allow (`Admission`).
//! Pure; it reads only the gateway's rules for the request.

use std::collections::BTreeMap;

use super::facts::PeerRules;
use super::intent::{Intent, ServiceIntent};
use super::request::Sample;
use crate::conventions::SOURCE_CLUSTER_HEADER;

/// A trust domain no cluster has: `.invalid` is reserved (RFC 2606 §2).
pub const STRANGER_TRUST_DOMAIN: &str = "mcwan-verify.invalid";
/// A namespace and a service account that stand for any other than those named.
pub const OTHER_NAME: &str = "mcwan-verify-other";

/// What a gateway admits for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// The clusters whose workloads, in the service's namespace and with an admitted
    /// service account, the gateway admits, in ClusterSet order.
    pub clusters: Vec<String>,
    /// The callers it admits that the declarations do not, described: strangers first, then
    /// clusters, forged headers, other namespaces and other service accounts.
    pub intruders: Vec<String>,
}

/// The service account a legitimate caller of `service` runs as: the first it admits, or
/// `default` when it does not narrow them.
#[must_use]
pub fn account(service: &ServiceIntent) -> &str {
    service
        .allowed_service_accounts
        .as_ref()
        .and_then(|accounts| accounts.first())
        .map_or("default", String::as_str)
}

/// The identity a workload of the service's namespace in cluster `source` presents, without
/// `spiffe://`; `None` when the cluster has no trust domain.
#[must_use]
pub fn principal(intent: &Intent, source: &str, service: &ServiceIntent) -> Option<String> {
    let trust_domain = intent.cluster(source)?.trust_domain.as_ref()?;
    Some(format!(
        "{trust_domain}/ns/{}/sa/{}",
        service.namespace,
        account(service)
    ))
}

/// What a gateway is asked about the callers of one request: its rules for the request
/// (`PeerRules`), the request's headers without `x-mcwan-source-cluster`, and who a
/// legitimate caller is. Every gateway, host and service that agree on these get the same
/// answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    pub rules: PeerRules,
    /// Lowercase names, without `x-mcwan-source-cluster`.
    pub headers: BTreeMap<String, String>,
    /// The service's namespace.
    pub namespace: String,
    /// The service account a legitimate caller runs as (`account`).
    pub account: String,
    /// Whether the service admits only some service accounts.
    pub narrow: bool,
}

impl Question {
    /// The question about callers of a request for `service` that meets these rules.
    #[must_use]
    pub fn new(rules: PeerRules, sample: &Sample, service: &ServiceIntent) -> Self {
        let mut headers = sample.headers.clone();
        headers.remove(SOURCE_CLUSTER_HEADER);
        Question {
            rules,
            headers,
            namespace: service.namespace.clone(),
            account: account(service).to_string(),
            narrow: service.allowed_service_accounts.is_some(),
        }
    }
}

/// What the rules answer about each sample caller. Each caller presents a certificate and
/// names a cluster in `x-mcwan-source-cluster`, as a client's sidecar does:
/// - a workload of each cluster (its own name). For a cluster in `egress`, its egress
///   gateway's workload (`ns/…/sa/…`), which sends for the cluster's workloads, and a
///   workload of the service's namespace past it;
/// - the same workload naming the next cluster of the ClusterSet: the header must name the
///   certificate's cluster;
/// - a workload of each other namespace of the cluster, and of one no cluster declares;
/// - with allowed service accounts, a workload of another service account;
/// - a workload of a trust domain no cluster has, naming no cluster or any one.
#[derive(Debug, Clone)]
pub struct Answers {
    /// One per cluster of the ClusterSet that has a trust domain, in its order.
    clusters: Vec<ClusterAnswers>,
    stranger: bool,
}

/// What the rules answer about one cluster's sample callers.
#[derive(Debug, Clone)]
struct ClusterAnswers {
    /// The cluster's place in the ClusterSet.
    index: usize,
    /// Its workload (its egress gateway's) naming it.
    own: bool,
    /// A workload of the service's namespace, past its egress gateway.
    past_egress: bool,
    /// Its workload naming another cluster, which.
    forged: Option<usize>,
    /// The other namespaces whose workloads are admitted.
    namespaces: Vec<String>,
    /// A workload of another service account.
    other_account: bool,
}

impl Answers {
    /// Asks the rules about every sample caller.
    #[must_use]
    pub fn of(intent: &Intent, question: &Question, egress: &BTreeMap<String, String>) -> Self {
        let mut headers = question.headers.clone();
        let mut admitted = |principal: &str, claim: Option<&str>| {
            match claim {
                Some(cluster) => headers.insert(SOURCE_CLUSTER_HEADER.to_string(), cluster.into()),
                None => headers.remove(SOURCE_CLUSTER_HEADER),
            };
            question.rules.admits(&headers, Some(principal))
        };
        let (namespace, account) = (&question.namespace, &question.account);
        let clusters = &intent.clusters;
        let mut answers = Vec::new();
        for (i, cluster) in clusters.iter().enumerate() {
            let Some(trust_domain) = &cluster.trust_domain else {
                continue;
            };
            let name = Some(cluster.name.as_str());
            let workload = format!("{trust_domain}/ns/{namespace}/sa/{account}");
            let (own, past_egress) = match egress.get(&cluster.name) {
                Some(gateway) => (
                    format!("{trust_domain}/{gateway}"),
                    admitted(&workload, name),
                ),
                None => (workload, false),
            };
            let forged = (i + 1..clusters.len())
                .chain(0..i)
                .find(|&f| clusters[f].name != cluster.name)
                .filter(|&f| admitted(&own, Some(&clusters[f].name)));
            let others = cluster
                .namespaces
                .iter()
                .map(String::as_str)
                .chain([OTHER_NAME])
                .filter(|n| n != namespace);
            let namespaces = others
                .filter(|other| admitted(&format!("{trust_domain}/ns/{other}/sa/{account}"), name))
                .map(str::to_string)
                .collect();
            let other_account = question.narrow
                && admitted(
                    &format!("{trust_domain}/ns/{namespace}/sa/{OTHER_NAME}"),
                    name,
                );
            answers.push(ClusterAnswers {
                index: i,
                own: admitted(&own, name),
                past_egress,
                forged,
                namespaces,
                other_account,
            });
        }
        let stranger = format!("{STRANGER_TRUST_DOMAIN}/ns/{namespace}/sa/{account}");
        let stranger = std::iter::once(None)
            .chain(clusters.iter().map(|c| Some(c.name.as_str())))
            .any(|claim| admitted(&stranger, claim));
        Answers {
            clusters: answers,
            stranger,
        }
    }

    /// Who the rules admit for a request for `service`, compared with the callers the
    /// declarations allow: a workload of a cluster that is admitted is a caller, and an
    /// intruder when the declarations do not allow it; every other admitted sample is an
    /// intruder. In egress gateway mode the egress gateway's policies are what tell the
    /// cluster's namespaces apart, so a workload of the service's namespace admitted past
    /// it is an intruder too.
    #[must_use]
    pub fn admission(&self, intent: &Intent, service: &ServiceIntent) -> Admission {
        let mut out = Admission::default();
        // Intruders by kind, in the order they are listed.
        let (mut clusters_in, mut forged_in, mut namespaces_in, mut accounts_in) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let namespace = &service.namespace;
        for answers in &self.clusters {
            let cluster = &intent.clusters[answers.index];
            let name = &cluster.name;
            if answers.past_egress {
                namespaces_in.push(format!(
                    "`{name}`'s workloads of namespace `{namespace}`, past its egress gateway"
                ));
            }
            if answers.own {
                out.clusters.push(name.clone());
                if !intent.imports(cluster, service) {
                    clusters_in.push(format!("`{name}`, which does not import the service"));
                } else if !intent.admits(cluster, service) {
                    clusters_in.push(format!("`{name}`, which its allowed clusters leave out"));
                }
            }
            if let Some(forged) = answers.forged {
                forged_in.push(format!(
                    "`{name}` naming `{}` in `{SOURCE_CLUSTER_HEADER}`",
                    intent.clusters[forged].name
                ));
            }
            for other in &answers.namespaces {
                namespaces_in.push(format!("`{name}`'s workloads of namespace `{other}`"));
            }
            if answers.other_account {
                accounts_in.push(format!("`{name}`'s service account `{OTHER_NAME}`"));
            }
        }
        if self.stranger {
            out.intruders.push(format!(
                "workloads of trust domain `{STRANGER_TRUST_DOMAIN}`, which no cluster has"
            ));
        }
        out.intruders
            .extend([clusters_in, forged_in, namespaces_in, accounts_in].concat());
        out
    }
}
