//! `mcwan generate`: a synthetic declarations repository of any size, for benchmarks and
//! reliability tests. Pure: it returns the files; `emit` writes them. The same arguments
//! always give the same bytes.

use std::fmt::Write;

/// The shape of the clusterset to generate; the `generate` command's arguments.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Shape {
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    #[arg(long, default_value_t = 2)]
    pub policies: usize,
    /// Clusters exporting each service.
    #[arg(long, default_value_t = 1)]
    pub exporters: usize,
    /// Namespaces the services are spread over.
    #[arg(long, default_value_t = 10)]
    pub namespaces: usize,
    /// Share of the namespaces each cluster has (0 to 1); exporters always have theirs.
    #[arg(long, default_value_t = 1.0)]
    pub namespace_fraction: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// xorshift64*: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    fn chance(&mut self, p: f64) -> bool {
        // 53 random bits as a fraction in [0, 1).
        #[allow(clippy::cast_precision_loss)]
        let fraction = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        fraction < p
    }
}

/// The files of the repository, as (relative path, content), sorted by path.
#[must_use]
pub fn repository(shape: Shape) -> Vec<(String, String)> {
    let mut rng = Rng(shape.seed.max(1));
    let clusters = shape.clusters.max(1);
    let namespaces = shape.namespaces.max(1);
    let exporters = shape.exporters.clamp(1, clusters);
    let mut files = Vec::new();

    let mut policies = String::new();
    for p in 0..shape.policies.max(1) {
        let _ = write!(
            policies,
            "---\napiVersion: mcw.l7mp.io/v1alpha1\nkind: WANPolicy\nmetadata:\n  name: class-{p}\nspec:\n  tunnel: {}\n  port: {}\n  sla: {{jitterMs: {}, latencyMs: {}, lossPercent: 1}}\n",
            ["biz-internet", "public-internet", "mpls", "gold"][p % 4],
            31000 + p,
            10 * (p + 1),
            50 * (p + 1),
        );
    }
    files.push(("policies/policies.yaml".to_string(), policies));

    let mut has: Vec<Vec<bool>> = (0..clusters)
        .map(|_| {
            (0..namespaces)
                .map(|_| rng.chance(shape.namespace_fraction))
                .collect()
        })
        .collect();
    let mut exported: Vec<String> = vec![String::new(); clusters];
    for s in 0..shape.services {
        let namespace = s % namespaces;
        let first = rng.below(clusters);
        for e in 0..exporters {
            let c = (first + e) % clusters;
            has[c][namespace] = true;
            let _ = write!(
                exported[c],
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: ns-{namespace}}}\nspec:\n  ports: [{{name: http, port: 8080}}]\n\
                 ---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: svc-{s}\n  namespace: ns-{namespace}\n  annotations: {{mcw.l7mp.io/mc-wan-policy: class-{}}}\n",
                s % shape.policies.max(1)
            );
        }
    }

    // The Cisco policy is rendered too (its tunnels are TLOC colours), as benchmarks measure it.
    let mut clusterset = String::from(
        "apiVersion: mcw.l7mp.io/v1alpha1\nkind: ClusterSet\nmetadata:\n  name: generated\nspec:\n  sdwan: {vendor: cisco}\n  clusters:\n",
    );
    for (c, present) in has.iter().enumerate() {
        let names: Vec<String> = present
            .iter()
            .enumerate()
            .filter(|(_, p)| **p)
            .map(|(n, _)| format!("ns-{n}"))
            .collect();
        let _ = write!(
            clusterset,
            "  - name: cluster-{c}\n    trustDomain: cluster-{c}.generated.example\n    region: region-{}\n    zone: zone-{c}\n    sdwanSite: {}\n    gateway: {{address: 10.{}.{}.1, exposure: NodePort}}\n    namespaces: [{}]\n",
            c % 4,
            c + 1,
            c / 250,
            c % 250,
            names.join(", ")
        );
    }
    files.push(("clusterset.yaml".to_string(), clusterset));
    for (c, text) in exported.into_iter().enumerate() {
        if !text.is_empty() {
            files.push((format!("clusters/cluster-{c}/services.yaml"), text));
        }
    }
    files.sort();
    files
}
