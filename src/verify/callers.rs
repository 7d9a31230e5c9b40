//! Who an exporter's gateway admits for one request, found by asking its authorization
//! rules about sample callers: a workload of each cluster (its egress gateway, for a cluster
//! in egress gateway mode), of other namespaces and service accounts, one that names another
//! cluster than its own, and a stranger. Compared with the callers the declarations allow.
//! Pure; it reads only the gateway's facts.

use std::collections::BTreeMap;

use super::facts::ClusterFacts;
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

/// Who the gateway listening on `port` of `gateway` admits for `sample` with Host `host`,
/// a request for `service`. Each caller presents a certificate and names a cluster in
/// `x-mcwan-source-cluster`, as a client's sidecar does:
/// - a workload of each cluster (its own name): admitted, it is a caller; one the
///   declarations do not allow is an intruder. For a cluster in `egress` (its egress
///   gateway's workload, `ns/…/sa/…`), that gateway, which sends for the cluster's
///   workloads; a workload of the service's namespace admitted past it is an intruder (the
///   egress gateway's policies are what tell namespaces apart);
/// - the same workload naming the next cluster of the ClusterSet: the header must name the
///   certificate's cluster;
/// - a workload of each other namespace of the cluster, and of one no cluster declares;
/// - with allowed service accounts, a workload of another service account;
/// - a workload of a trust domain no cluster has, naming no cluster or any one.
#[must_use]
pub fn admission(
    intent: &Intent,
    gateway: &ClusterFacts,
    port: u16,
    host: &str,
    sample: &Sample,
    service: &ServiceIntent,
    egress: &BTreeMap<String, String>,
) -> Admission {
    // The request naming `claim` in the header, or no cluster.
    let claiming = |claim: Option<&str>| {
        let mut sample = sample.clone();
        match claim {
            Some(cluster) => sample
                .headers
                .insert(SOURCE_CLUSTER_HEADER.to_string(), cluster.to_string()),
            None => sample.headers.remove(SOURCE_CLUSTER_HEADER),
        };
        sample
    };
    let admitted = |principal: &str, request: &Sample| {
        gateway
            .admits(port, host, request, Some(principal))
            .unwrap_or(false)
    };
    let mut out = Admission::default();
    // Intruders by kind, in the order they are listed.
    let (mut clusters_in, mut forged_in, mut namespaces_in, mut accounts_in) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let namespace = &service.namespace;
    let account = account(service);
    let clusters = &intent.clusters;
    for (i, cluster) in clusters.iter().enumerate() {
        let Some(trust_domain) = &cluster.trust_domain else {
            continue;
        };
        let name = cluster.name.as_str();
        let workload = format!("{trust_domain}/ns/{namespace}/sa/{account}");
        let request = claiming(Some(name));
        let own = match egress.get(name) {
            Some(gateway) => {
                if admitted(&workload, &request) {
                    namespaces_in.push(format!(
                        "`{name}`'s workloads of namespace `{namespace}`, past its egress gateway"
                    ));
                }
                format!("{trust_domain}/{gateway}")
            }
            None => workload,
        };
        if admitted(&own, &request) {
            out.clusters.push(name.to_string());
            if !intent.imports(cluster, service) {
                clusters_in.push(format!("`{name}`, which does not import the service"));
            } else if !intent.admits(cluster, service) {
                clusters_in.push(format!("`{name}`, which its allowed clusters leave out"));
            }
        }
        let forged = clusters[i + 1..]
            .iter()
            .chain(&clusters[..i])
            .find(|c| c.name != name);
        if let Some(forged) = forged.filter(|f| admitted(&own, &claiming(Some(&f.name)))) {
            forged_in.push(format!(
                "`{name}` naming `{}` in `{SOURCE_CLUSTER_HEADER}`",
                forged.name
            ));
        }
        let others = cluster
            .namespaces
            .iter()
            .map(String::as_str)
            .chain([OTHER_NAME])
            .filter(|n| n != namespace);
        for other in others {
            if admitted(&format!("{trust_domain}/ns/{other}/sa/{account}"), &request) {
                namespaces_in.push(format!("`{name}`'s workloads of namespace `{other}`"));
            }
        }
        let other_account = format!("{trust_domain}/ns/{namespace}/sa/{OTHER_NAME}");
        if service.allowed_service_accounts.is_some() && admitted(&other_account, &request) {
            accounts_in.push(format!("`{name}`'s service account `{OTHER_NAME}`"));
        }
    }
    let stranger = format!("{STRANGER_TRUST_DOMAIN}/ns/{namespace}/sa/{account}");
    let claims = std::iter::once(None).chain(clusters.iter().map(|c| Some(c.name.as_str())));
    if claims
        .into_iter()
        .any(|claim| admitted(&stranger, &claiming(claim)))
    {
        out.intruders.push(format!(
            "workloads of trust domain `{STRANGER_TRUST_DOMAIN}`, which no cluster has"
        ));
    }
    out.intruders
        .extend([clusters_in, forged_in, namespaces_in, accounts_in].concat());
    out
}
