//! Stage 4: the order in which `kubectl kustomize` prints a cluster directory's objects, so
//! that `render --cluster` prints them as Argo CD would build the directory. Pure.
//!
//! A rendered `kustomization.yaml` sets no `sortOptions`, and `kustomize build` (which
//! `kubectl kustomize` embeds) without `--reorder` then sorts in the legacy order
//! (api/krusty/kustomizer.go `applySortOrder`, kustomize v5.5.0): kinds of a first list
//! first and of a last list last, the rest between them by group, version and kind, and
//! objects of one group, version and kind by namespace and name
//! (api/internal/builtins/SortOrderTransformer.go `legacyIDSorter`, v5.5.0). The namespace
//! layout changes nothing: kustomize sorts the whole build once, at the top.

use std::cmp::Ordering;

use serde_json::Value;

/// `defaultOrderFirst`: these kinds come first, in this order.
const ORDER_FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

/// `defaultOrderLast`: these kinds come last, in this order.
const ORDER_LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// What kustomize sorts an object by: its group, version and kind, namespace and name, as
/// the strings it compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The kind's place: negative for `ORDER_FIRST`, positive for `ORDER_LAST`, else 0.
    rank: i64,
    group: String,
    version: String,
    kind: String,
    /// `legacyResIDSortString` less its group, version and kind (the same for the objects it
    /// decides between): `<namespace>|<name>`, `~X` for no namespace, `~N` for no name.
    /// Compared as one string, as kustomize does: `|` sorts after every DNS character, so
    /// namespace `ns-10` comes before `ns-1`.
    place: String,
}

impl SortKey {
    /// The key of a rendered object.
    #[must_use]
    pub fn of(object: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let api_version = text(&object["apiVersion"]);
        // resid.ParseGroupVersion: `v1` is the core group's.
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group.to_string(), version.to_string()),
            None => (String::new(), api_version),
        };
        let kind = text(&object["kind"]);
        let or = |value: String, missing: &str| {
            if value.is_empty() {
                missing.to_string()
            } else {
                value
            }
        };
        let metadata = &object["metadata"];
        let place = format!(
            "{}|{}",
            or(text(&metadata["namespace"]), "~X"),
            or(text(&metadata["name"]), "~N")
        );
        let rank = if let Some(i) = ORDER_FIRST.iter().position(|k| *k == kind) {
            i64::try_from(i).unwrap_or(0) - i64::try_from(ORDER_FIRST.len()).unwrap_or(0)
        } else if let Some(i) = ORDER_LAST.iter().position(|k| *k == kind) {
            1 + i64::try_from(i).unwrap_or(0)
        } else {
            0
        };
        SortKey {
            rank,
            group,
            version,
            kind,
            place,
        }
    }

    /// `legacyGVKSortString`: `<group>_<version>_<kind>`, `~G`, `~V`, `~K` for missing parts.
    fn gvk(&self) -> String {
        let or = |value: &str, missing: &'static str| -> String {
            if value.is_empty() {
                missing.to_string()
            } else {
                value.to_string()
            }
        };
        format!(
            "{}_{}_{}",
            or(&self.group, "~G"),
            or(&self.version, "~V"),
            or(&self.kind, "~K")
        )
    }

    /// `legacyIDSorter.Less` as an ordering: by group, version and kind (`gvkLessThan`),
    /// then by namespace and name.
    #[must_use]
    pub fn legacy_order(&self, other: &Self) -> Ordering {
        let same_type =
            (&self.group, &self.version, &self.kind) == (&other.group, &other.version, &other.kind);
        if same_type {
            return self.place.cmp(&other.place);
        }
        if self.rank != other.rank {
            return self.rank.cmp(&other.rank);
        }
        let (mine, theirs) = (self.gvk(), other.gvk());
        // kustomize puts a core Namespace after a same-named kind of another group.
        if self.kind == "Namespace"
            && other.kind == "Namespace"
            && (self.group.is_empty() || other.group.is_empty())
        {
            return theirs.cmp(&mine);
        }
        mine.cmp(&theirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> SortKey {
        let mut metadata = json!({ "name": name });
        if let Some(namespace) = namespace {
            metadata["namespace"] = json!(namespace);
        }
        SortKey::of(&json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata }))
    }

    fn sorted(mut keys: Vec<SortKey>) -> Vec<SortKey> {
        keys.sort_by(SortKey::legacy_order);
        keys
    }

    #[test]
    fn listed_kinds_come_first_in_list_order_then_the_rest_by_group() {
        let route = key("gateway.networking.k8s.io/v1", "HTTPRoute", Some("a"), "r");
        let entry = key("networking.istio.io/v1", "ServiceEntry", Some("a"), "e");
        let service = key("v1", "Service", Some("a"), "s");
        let config = key("v1", "ConfigMap", Some("a"), "c");
        let namespace = key("v1", "Namespace", None, "n");
        let crd = key(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "d",
        );
        let webhook = key(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            None,
            "w",
        );
        let expected = vec![
            namespace.clone(),
            crd.clone(),
            config.clone(),
            service.clone(),
            route.clone(),
            entry.clone(),
            webhook.clone(),
        ];
        assert_eq!(
            sorted(vec![webhook, entry, route, service, config, crd, namespace]),
            expected
        );
    }

    /// kustomize compares `<namespace>|<name>` as one string, not as a pair.
    #[test]
    fn namespace_and_name_compare_as_one_string() {
        let short = key("v1", "Service", Some("ns-1"), "a");
        let long = key("v1", "Service", Some("ns-10"), "a");
        let cluster_scoped = key("v1", "Service", None, "a");
        assert_eq!(
            sorted(vec![short.clone(), cluster_scoped.clone(), long.clone()]),
            vec![long, short, cluster_scoped]
        );
    }
}
