//! The kinds a declarations repository may hold, in one registry: each kind's schema, where
//! it may sit, whether it is namespaced, and how the CLI describes it. Schema lookup,
//! placement, reading (`check::documents`) and `mcwan schema` all go through it. Pure data.

use std::fmt;

/// A kind of declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ClusterSet,
    WanPolicy,
    Service,
    ServiceExport,
    Namespace,
    WanRoute,
    VirtualService,
    DestinationRule,
}

/// Where a kind's declarations may sit in the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `clusterset.yaml` only.
    ClusterSetFile,
    /// `clusterset.yaml`, `policies/`, or (as a copy) a cluster directory.
    Anywhere,
    /// A cluster directory, `clusters/<cluster>/`.
    ClusterDirectory,
}

/// Where a kind's schema comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// mcwan's own input schema, under `schemas/input/`.
    Input(&'static str),
    /// An Istio kind copied to the output unchanged: its output schema, under
    /// `schemas/output/`, at every version Istio serves it (`PASS_THROUGH_VERSIONS`).
    PassThrough(&'static str),
}

/// The versions of `networking.istio.io` Istio serves its pass-through kinds at.
pub const PASS_THROUGH_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

impl Kind {
    /// Every kind, in the order `mcwan schema` prints them.
    pub const ALL: &'static [Kind] = &[
        Kind::ClusterSet,
        Kind::WanPolicy,
        Kind::ServiceExport,
        Kind::Service,
        Kind::Namespace,
        Kind::WanRoute,
        Kind::VirtualService,
        Kind::DestinationRule,
    ];

    /// The kind named `name`, exactly as `kind:` spells it.
    #[must_use]
    pub fn named(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The name `kind:` spells.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::ClusterSet => "ClusterSet",
            Kind::WanPolicy => "WANPolicy",
            Kind::Service => "Service",
            Kind::ServiceExport => "ServiceExport",
            Kind::Namespace => "Namespace",
            Kind::WanRoute => "WANRoute",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
        }
    }

    #[must_use]
    pub fn schema(self) -> Schema {
        match self {
            Kind::ClusterSet => Schema::Input("clusterset.json"),
            Kind::WanPolicy => Schema::Input("wanpolicy.json"),
            Kind::Service => Schema::Input("service.json"),
            Kind::ServiceExport => Schema::Input("serviceexport.json"),
            Kind::Namespace => Schema::Input("namespace.json"),
            Kind::WanRoute => Schema::Input("wanroute.json"),
            Kind::VirtualService => Schema::PassThrough("virtualservice.json"),
            Kind::DestinationRule => Schema::PassThrough("destinationrule.json"),
        }
    }

    #[must_use]
    pub fn placement(self) -> Placement {
        match self {
            Kind::ClusterSet => Placement::ClusterSetFile,
            Kind::WanPolicy => Placement::Anywhere,
            _ => Placement::ClusterDirectory,
        }
    }

    /// Whether its objects live in a namespace.
    #[must_use]
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::ClusterSet | Kind::WanPolicy | Kind::Namespace)
    }

    /// What it declares, for the CLI's help.
    #[must_use]
    pub fn about(self) -> &'static str {
        match self {
            Kind::ClusterSet => "the clusters, their gateways and the defaults",
            Kind::WanPolicy => "an SD-WAN tunnel, its port and SLA",
            Kind::Service => "a service a cluster may export",
            Kind::ServiceExport => "exports a Service to the clusterset",
            Kind::Namespace => "a namespace, with its labels",
            Kind::WanRoute => "L7 rules choosing a WAN policy per request",
            Kind::VirtualService => "an Istio VirtualService, copied unchanged",
            Kind::DestinationRule => "an Istio DestinationRule, copied unchanged",
        }
    }
}

impl Placement {
    /// Where the declarations may sit, as a hint says it.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Placement::ClusterSetFile => "`clusterset.yaml`",
            Placement::Anywhere => "anywhere",
            Placement::ClusterDirectory => "a cluster directory `clusters/<cluster>/`",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::named(kind.name()), Some(*kind));
        }
        assert_eq!(Kind::named("wanpolicy"), None);
    }
}
