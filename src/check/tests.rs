//! Unit tests of the check passes on small repositories written here: for each pass, a rule
//! that holds and one that fails, and that an earlier failure changes no later result.

use super::*;
use crate::diagnostic::{Code, Diagnostic};
use crate::load::{self, Content, InputFile, Limits};
use crate::model::{PassThrough, PolicyId};

const CLUSTERSET: &str = "
apiVersion: mcw.l7mp.io/v1alpha1
kind: ClusterSet
metadata: {name: demo}
spec:
  defaultWANPolicy: low
  sdwan: {colors: {business: biz-internet}}
  clusters:
  - name: one
    region: eu
    sdwanSite: 100
    trustDomain: one.demo
    gateway: {address: 10.0.0.1, exposure: NodePort}
    namespaces: [shop]
  - name: two
    region: eu
    sdwanSite: 200
    trustDomain: two.demo
    gateway: {address: 10.0.0.2, exposure: NodePort}
    namespaces: [shop]
";

const POLICIES: &str = "
apiVersion: mcw.l7mp.io/v1alpha1
kind: WANPolicy
metadata: {name: high}
spec: {tunnel: business, port: 31111, sla: {jitterMs: 50, latencyMs: 100, lossPercent: 1}}
---
apiVersion: mcw.l7mp.io/v1alpha1
kind: WANPolicy
metadata: {name: low}
spec: {tunnel: default, port: 31112, sla: {jitterMs: 1000, latencyMs: 1000, lossPercent: 100}}
";

/// A Service `shop/cart` on port `port` and its export.
fn cart(port: u16) -> String {
    format!(
        "
apiVersion: v1
kind: Service
metadata: {{name: cart, namespace: shop}}
spec: {{ports: [{{name: http, port: {port}}}]}}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {{name: cart, namespace: shop}}
"
    )
}

/// The base repository with `extra` files added or replaced.
fn repository(extra: &[(&str, &str)]) -> Vec<InputFile> {
    let cart = cart(8080);
    let base = [
        ("clusterset.yaml", CLUSTERSET),
        ("policies/policies.yaml", POLICIES),
        ("clusters/one/cart.yaml", cart.as_str()),
    ];
    let mut files: Vec<InputFile> = base
        .iter()
        .filter(|(path, _)| !extra.iter().any(|(p, _)| p == path))
        .chain(extra)
        .map(|(path, text)| InputFile {
            path: (*path).to_string(),
            content: Content::Text((*text).to_string()),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn loaded(extra: &[(&str, &str)]) -> Sources {
    let mut diagnostics = Diagnostics::default();
    let sources = load::parse(&repository(extra), Limits::default(), &mut diagnostics);
    assert!(diagnostics.is_empty(), "{:?}", diagnostics.into_sorted());
    sources
}

fn codes(diagnostics: Diagnostics) -> Vec<(Code, String)> {
    diagnostics
        .into_sorted()
        .into_iter()
        .map(|d: Diagnostic| (d.code, d.message))
        .collect()
}

/// Runs every pass up to and including the exports pass.
struct Fixture {
    sources: Sources,
    schemas: Schemas,
}

impl Fixture {
    fn new(extra: &[(&str, &str)]) -> Self {
        Fixture {
            sources: loaded(extra),
            schemas: Schemas::input(),
        }
    }

    fn input(&self) -> Input<'_> {
        Input {
            sources: &self.sources,
            schemas: &self.schemas,
        }
    }

    /// Every pass, as `check` runs them.
    fn check(&self, diagnostics: &mut Diagnostics) -> Option<Model> {
        check(
            &self.sources,
            &self.schemas,
            Options::default(),
            diagnostics,
        )
    }

    /// The ClusterSet's document.
    fn clusterset(&self) -> usize {
        self.sources
            .documents
            .iter()
            .position(|d| d.value["kind"] == "ClusterSet")
            .unwrap_or_default()
    }

    fn declarations(&self, diagnostics: &mut Diagnostics) -> documents::Declarations {
        documents::read(&self.sources, &self.schemas, diagnostics)
    }

    fn topology(
        &self,
        declarations: &documents::Declarations,
        diagnostics: &mut Diagnostics,
    ) -> topology::Topology {
        topology::Pass {
            input: self.input(),
            declarations,
            diagnostics,
        }
        .check()
        .expect("a topology")
    }

    /// The declarations, topology, policies and exports, with what the passes reported.
    fn exports(
        &self,
        diagnostics: &mut Diagnostics,
    ) -> (
        documents::Declarations,
        topology::Topology,
        Policies,
        Vec<(Export, usize)>,
    ) {
        let declarations = self.declarations(diagnostics);
        let mut topology = self.topology(&declarations, diagnostics);
        let policies = policies::Pass {
            input: self.input(),
            declarations: &declarations,
            topology: &topology,
            diagnostics,
        }
        .check();
        let exports = exports::Pass {
            input: self.input(),
            declarations: &declarations,
            policies: &policies,
            diagnostics,
        }
        .check(&mut topology);
        (declarations, topology, policies, exports)
    }
}

#[test]
fn documents_reads_known_kinds_and_refuses_unknown_ones() {
    let fixture = Fixture::new(&[]);
    let mut diagnostics = Diagnostics::default();
    let declarations = fixture.declarations(&mut diagnostics);
    assert!(diagnostics.is_empty());
    assert_eq!(declarations.policies.len(), 2);
    assert_eq!(declarations.exports.len(), 1);

    let odd = "apiVersion: mcw.l7mp.io/v1alpha1\nkind: WANPolice\nmetadata: {name: x}\n";
    let fixture = Fixture::new(&[("policies/odd.yaml", odd)]);
    let mut diagnostics = Diagnostics::default();
    let declarations = fixture.declarations(&mut diagnostics);
    assert_eq!(declarations.policies.len(), 2);
    let all = diagnostics.into_sorted();
    assert_eq!(all[0].code, Code::UnknownKind);
    assert_eq!(all[0].hint.as_deref(), Some("did you mean `WANPolicy`?"));
    assert_eq!(
        all[0].primary.as_ref().map(ToString::to_string).as_deref(),
        Some("policies/odd.yaml:2:1")
    );
}

#[test]
fn topology_accepts_distinct_clusters_and_reports_a_second_declaration() {
    let fixture = Fixture::new(&[]);
    let mut diagnostics = Diagnostics::default();
    let declarations = fixture.declarations(&mut diagnostics);
    let topology = fixture.topology(&declarations, &mut diagnostics);
    assert!(diagnostics.is_empty());
    assert_eq!(topology.by_name.len(), 2);

    let twice = CLUSTERSET.replace("name: two", "name: one");
    let fixture = Fixture::new(&[("clusterset.yaml", &twice)]);
    let mut diagnostics = Diagnostics::default();
    let declarations = fixture.declarations(&mut diagnostics);
    let topology = fixture.topology(&declarations, &mut diagnostics);
    assert_eq!(topology.clusterset.clusters.len(), 1);
    let all = diagnostics.into_sorted();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].code, Code::ClusterDuplicate);
    assert_eq!(all[0].secondary[0].0.line, 9);
    assert_eq!(all[0].primary.as_ref().map(|l| l.line), Some(15));
}

#[test]
fn a_duplicate_cluster_does_not_shift_later_clusters_locations() {
    let three = format!(
        "{CLUSTERSET}  - name: one\n    region: eu\n    sdwanSite: 300\n    gateway: {{address: 10.0.0.3}}\n  - name: three\n    region: eu\n    sdwanSite: 400\n    trustDomain: three.demo\n    gateway: {{address: 10.0.0.4}}\n    skipImports: [shop/x, shop/car]\n"
    );
    let fixture = Fixture::new(&[("clusterset.yaml", &three)]);
    let mut diagnostics = Diagnostics::default();
    let model = fixture.check(&mut diagnostics);
    assert!(model.is_none());
    let all = diagnostics.into_sorted();
    let opt_out = all
        .iter()
        .find(|d| d.code == Code::ImportOptOutUnknown && d.message.contains("`shop/car`"))
        .expect("an opt-out warning");
    // The second of the fourth declared cluster's `skipImports`, the third valid cluster,
    // which sorts first.
    let at = opt_out.primary.as_ref().map(|l| (l.line, l.col));
    assert_eq!(at, Some((30, 27)));
    assert_eq!(opt_out.hint.as_deref(), Some("did you mean `shop/cart`?"));
}

#[test]
fn policies_need_a_port_each() {
    let fixture = Fixture::new(&[]);
    let mut diagnostics = Diagnostics::default();
    let (_, _, policies, _) = fixture.exports(&mut diagnostics);
    assert!(diagnostics.is_empty());
    assert_eq!(policies.keys().collect::<Vec<_>>(), ["high", "low"]);

    let clash = POLICIES.replace("31112", "31111");
    let fixture = Fixture::new(&[("policies/policies.yaml", &clash)]);
    let mut diagnostics = Diagnostics::default();
    fixture.exports(&mut diagnostics);
    assert_eq!(
        codes(diagnostics),
        [(
            Code::WanpolicyPortClash,
            "WAN policies `high` and `low` both use port 31111".to_string()
        )]
    );
}

#[test]
fn exports_need_their_service() {
    let fixture = Fixture::new(&[]);
    let mut diagnostics = Diagnostics::default();
    let (_, _, _, exports) = fixture.exports(&mut diagnostics);
    assert!(diagnostics.is_empty());
    assert_eq!(exports.len(), 1);
    // Policies are numbered in name order: `high`, then `low`.
    assert_eq!(exports[0].0.policies, [PolicyId(1)]);
    assert_eq!(exports[0].0.port.port, 8080);

    let export_only = "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: cart, namespace: shop}\n";
    let fixture = Fixture::new(&[("clusters/one/cart.yaml", export_only)]);
    let mut diagnostics = Diagnostics::default();
    let (_, _, _, exports) = fixture.exports(&mut diagnostics);
    assert!(exports.is_empty());
    let all = diagnostics.into_sorted();
    assert_eq!(all[0].code, Code::ExportNoService);
    assert_eq!(
        all[0].hint.as_deref(),
        Some("declare Service `shop/cart` in `clusters/one/`")
    );
}

const ROUTE: &str = "
apiVersion: mcw.l7mp.io/v1alpha1
kind: WANRoute
metadata: {name: cart, namespace: shop}
spec:
  rules:
  - matches: [{path: {value: /pay}}]
    wanPolicy: POLICY
  default: {wanPolicy: low}
";

/// Runs the routes pass after `diagnostics` already holds whatever it holds.
fn routed(policy: &str, diagnostics: &mut Diagnostics) -> Vec<(Export, usize)> {
    let route = ROUTE.replace("POLICY", policy);
    let fixture = Fixture::new(&[("clusters/one/route.yaml", &route)]);
    let (declarations, topology, policies, mut exports) = fixture.exports(diagnostics);
    routes::Pass {
        input: fixture.input(),
        declarations: &declarations,
        topology: &topology,
        policies: &policies,
        diagnostics,
    }
    .check(&mut exports);
    exports
}

#[test]
fn routes_refine_their_export_with_declared_policies() {
    let mut diagnostics = Diagnostics::default();
    let exports = routed("high", &mut diagnostics);
    assert!(diagnostics.is_empty());
    assert_eq!(exports[0].0.policies, [PolicyId(0), PolicyId(1)]);
    assert!(exports[0].0.route.is_some());

    let mut diagnostics = Diagnostics::default();
    let exports = routed("hihg", &mut diagnostics);
    assert!(exports[0].0.route.is_none());
    let all = diagnostics.into_sorted();
    assert_eq!(all[0].code, Code::WanrouteUnknownPolicy);
    assert_eq!(all[0].primary.as_ref().map(|l| l.line), Some(8));
}

/// The regression: a pass must ask whether *its* rules failed, not whether the shared list
/// holds any error, or an earlier pass's failure would silently drop a valid route.
#[test]
fn an_earlier_error_changes_no_later_pass_result() {
    let mut diagnostics = Diagnostics::default();
    diagnostics.push(diags::clusterset_missing());
    let exports = routed("high", &mut diagnostics);
    assert_eq!(diagnostics.errors(), 1);
    assert_eq!(exports[0].0.policies, [PolicyId(0), PolicyId(1)]);
    assert!(exports[0].0.route.is_some());
}

const CLIENT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: client, namespace: shop}
spec:
  hosts: [front.shop.svc.cluster.local]
  http:
  - route:
    - destination: {host: cart.shop.svc.clusterset.local, SUBSET}
      headers: {request: {set: {host: cart.shop.svc.clusterset.local}}}
    timeout: 5s
    retries: {attempts: 2}
";

fn passed_through(subset: &str) -> (Vec<PassThrough>, Diagnostics) {
    let client = CLIENT.replace("SUBSET", subset);
    let fixture = Fixture::new(&[("clusters/two/client.yaml", &client)]);
    let mut diagnostics = Diagnostics::default();
    let (declarations, topology, policies, exports) = fixture.exports(&mut diagnostics);
    let out = passthrough::Pass {
        input: fixture.input(),
        declarations: &declarations,
        topology: &topology,
        policies: &policies,
        exports: &exports,
        diagnostics: &mut diagnostics,
    }
    .check();
    (out, diagnostics)
}

#[test]
fn passthrough_routes_to_imported_subsets() {
    let (out, diagnostics) = passed_through("subset: low");
    assert!(diagnostics.is_empty(), "{:?}", diagnostics.into_sorted());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destinations, ["cart.shop.svc.clusterset.local"]);

    let (out, diagnostics) = passed_through("subset: lowest");
    assert!(out.is_empty());
    let all = diagnostics.into_sorted();
    assert_eq!(all[0].code, Code::VirtualserviceUnknownSubset);
    assert_eq!(
        all[0].hint.as_deref(),
        Some("subsets of `cart.shop.svc.clusterset.local`: low")
    );
    assert_eq!(all[0].primary.as_ref().map(|l| l.line), Some(9));
}

fn conflicts(port: u16, resolve: bool) -> (Vec<(Export, usize)>, Diagnostics) {
    let other = cart(port);
    let fixture = Fixture::new(&[("clusters/two/cart.yaml", &other)]);
    let mut diagnostics = Diagnostics::default();
    let (_, topology, policies, mut exports) = fixture.exports(&mut diagnostics);
    conflicts::Pass {
        input: fixture.input(),
        clusterset: &topology.clusterset,
        policies: &policies,
        resolve,
        diagnostics: &mut diagnostics,
    }
    .check(&mut exports);
    (exports, diagnostics)
}

#[test]
fn conflicts_need_exports_to_agree() {
    let (exports, diagnostics) = conflicts(8080, false);
    assert!(diagnostics.is_empty());
    assert_eq!(exports.len(), 2);

    // Values come in the order the clusters are named: `one` exports 8080, `two` 9090
    // (they came swapped once, naming `two`'s port as `one`'s).
    let (_, diagnostics) = conflicts(9090, false);
    assert_eq!(
        codes(diagnostics),
        [(
            Code::McsConflict,
            "clusters `one` and `two` export `shop/cart` differently: port `http` 8080/HTTP vs `http` 9090/HTTP".to_string()
        )]
    );
    let (_, diagnostics) = conflicts(9090, true);
    assert!(!diagnostics.has_errors());
}

#[test]
fn imports_name_exported_services() {
    let skip = |service: &str| {
        CLUSTERSET.replacen(
            "namespaces: [shop]",
            &format!("namespaces: [shop]\n    skipImports: [{service}]"),
            2,
        )
    };
    for (service, warned) in [("shop/cart", false), ("shop/card", true)] {
        let clusterset = skip(service);
        let fixture = Fixture::new(&[("clusterset.yaml", &clusterset)]);
        let mut diagnostics = Diagnostics::default();
        let model = fixture.check(&mut diagnostics);
        assert!(model.is_some());
        let all = diagnostics.into_sorted();
        assert_eq!(
            all.iter().any(|d| d.code == Code::ImportOptOutUnknown),
            warned,
            "{all:?}"
        );
    }
}

#[test]
fn check_refuses_declarations_load_found_errors_in() {
    let fixture = Fixture::new(&[]);
    let mut diagnostics = Diagnostics::default();
    assert!(check(
        &fixture.sources,
        &fixture.schemas,
        Options::default(),
        &mut diagnostics
    )
    .is_some());
    let mut diagnostics = Diagnostics::default();
    diagnostics.push(diags::clusterset_missing());
    assert!(check(
        &fixture.sources,
        &fixture.schemas,
        Options::default(),
        &mut diagnostics
    )
    .is_none());
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "pointer `/spec/clusters/0/gateway/adress` is not a field of")]
fn a_pointer_the_schema_cannot_have_is_a_bug() {
    let fixture = Fixture::new(&[]);
    let clusterset = fixture.clusterset();
    let typo = fields("spec.clusters").index(0).fields("gateway.adress");
    let _ = fixture.input().at(clusterset, &typo);
}

#[test]
fn a_pointer_the_document_lacks_points_at_its_parent() {
    let fixture = Fixture::new(&[]);
    let clusterset = fixture.clusterset();
    let absent = fields("spec.clusters").index(0).key("skipImports");
    let parent = fields("spec.clusters").index(0);
    assert_eq!(
        fixture.input().at(clusterset, &absent),
        fixture.input().at(clusterset, &parent)
    );
}
