//! Pass 6: WANRoutes. Each refines an export of the same cluster, names declared WAN
//! policies, uses valid paths and RE2 expressions, and has no rule an earlier one shadows.
//! A valid route replaces its export's policies with exactly those its rules name.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::documents::{Declarations, Located};
use crate::check::pointer::{fields, Input, Pointer};
use crate::check::topology::Topology;
use crate::check::{policy_id, policy_names, policy_refused, Policies};
use crate::conventions::POLICY_ANNOTATION;
use crate::diagnostic::Diagnostics;
use crate::diags::{self, Regex, Unenforceable};
use crate::kind::Kind;
use crate::model::{
    Action, ClusterId, Export, HttpMatch, MatchKind, NamedMatch, Rule, StringMatch, WanRoute,
};
use crate::spec;

/// The WANRoutes pass's inputs and its sink.
pub struct Pass<'a> {
    pub input: Input<'a>,
    pub declarations: &'a Declarations,
    pub topology: &'a Topology,
    pub policies: &'a Policies,
    pub diagnostics: &'a mut Diagnostics,
}

impl Pass<'_> {
    /// Checks every WANRoute and gives each valid one to the export it refines.
    pub fn check(mut self, exports: &mut [(Export, usize)]) {
        let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for (cluster, raw) in &self.declarations.routes {
            let Some(&c) = self.topology.by_name.get(cluster) else {
                continue;
            };
            let meta = &raw.value.metadata;
            let namespace = meta
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string());
            let shown = format!("{namespace}/{}", meta.name);
            let name_at = |doc: usize| self.input.at(doc, &fields("metadata.name"));
            let key = (cluster.clone(), namespace.clone(), meta.name.clone());
            if let Some(first) = seen.insert(key, raw.doc) {
                self.diagnostics.push(diags::object_duplicate(
                    name_at(raw.doc),
                    "WANRoute",
                    &shown,
                    Some(cluster),
                    name_at(first),
                ));
                continue;
            }
            let Some((export, export_doc)) = exports.iter_mut().find(|(e, _)| {
                e.cluster == ClusterId(c) && e.namespace == namespace && e.name == meta.name
            }) else {
                if !self.declarations.is_broken(
                    Kind::ServiceExport,
                    Some(cluster),
                    &namespace,
                    &meta.name,
                ) {
                    let at = name_at(raw.doc);
                    self.diagnostics
                        .push(diags::wanroute_no_export(at, &shown, cluster));
                }
                continue;
            };
            self.refine(raw, &shown, export, *export_doc);
        }
    }

    /// Replaces the export's policies with those of its valid route.
    fn refine(
        &mut self,
        raw: &Located<spec::WanRoute>,
        shown: &str,
        export: &mut Export,
        export_doc: usize,
    ) {
        let Some(route) = Rules::new(
            self.input,
            raw.doc,
            self.declarations,
            self.policies,
            self.diagnostics,
        )
        .route(&raw.value.spec) else {
            return;
        };
        let spec_at = self.input.at(raw.doc, &fields("spec"));
        let used = route.policies();
        if used.is_empty() {
            self.diagnostics
                .push(diags::wanroute_denies_all(spec_at, shown));
            return;
        }
        if let Some(annotated) = export.annotations.get(POLICY_ANNOTATION) {
            let names = policy_names(self.policies, &used);
            if !names.contains(annotated) {
                let pointer = fields("metadata.annotations").key(POLICY_ANNOTATION);
                self.diagnostics.push(diags::wanroute_annotation_ignored(
                    self.input.at(export_doc, &pointer),
                    shown,
                    annotated,
                    &names,
                    spec_at,
                ));
            }
        }
        export.policies = used;
        export.route = Some(route);
    }
}

/// The rules of one WANRoute, in document `doc`.
struct Rules<'a> {
    input: Input<'a>,
    doc: usize,
    declarations: &'a Declarations,
    policies: &'a Policies,
    diagnostics: &'a mut Diagnostics,
    /// Errors before this route's: more after it means the route is invalid.
    errors_before: usize,
    /// A policy it names is declared but invalid, and reported where it is declared: the
    /// route is invalid without an error of its own.
    unresolved: bool,
}

impl<'a> Rules<'a> {
    fn new(
        input: Input<'a>,
        doc: usize,
        declarations: &'a Declarations,
        policies: &'a Policies,
        diagnostics: &'a mut Diagnostics,
    ) -> Self {
        let errors_before = diagnostics.errors();
        Rules {
            input,
            doc,
            declarations,
            policies,
            diagnostics,
            errors_before,
            unresolved: false,
        }
    }

    fn at(&self, pointer: &Pointer) -> crate::diagnostic::Location {
        self.input.at(self.doc, pointer)
    }

    /// The route, unless one of its rules is invalid; shadowed rules left out.
    fn route(mut self, spec: &spec::WanRouteSpec) -> Option<WanRoute> {
        let mut rules = Vec::new();
        for (i, raw) in spec.rules.iter().enumerate() {
            let base = fields("spec.rules").index(i);
            let name = raw
                .name
                .clone()
                .unwrap_or_else(|| format!("rule-{}", i + 1));
            let matches = raw
                .matches
                .iter()
                .enumerate()
                .map(|(j, m)| self.http_match(m, &base.clone().key("matches").index(j)))
                .collect();
            let action = self.action(Some(&raw.action), base);
            rules.push(Rule {
                name,
                matches,
                action,
            });
        }
        let default = self.action(spec.default.as_ref(), fields("spec.default"));
        if self.unresolved || self.diagnostics.errors() > self.errors_before {
            return None;
        }
        let shadowed = self.shadowed(&rules);
        self.ingress(&rules, &shadowed, &default);
        // A rule that can never match is left out, so that no listener accepts its requests.
        let rules = rules
            .into_iter()
            .enumerate()
            .filter(|(j, _)| !shadowed.contains(j))
            .map(|(_, r)| r)
            .collect();
        Some(WanRoute { rules, default })
    }

    /// What a rule or the default does: a declared policy, or deny.
    fn action(&mut self, raw: Option<&spec::RouteAction>, pointer: Pointer) -> Action {
        let policy = raw.and_then(|a| a.wan_policy.as_ref());
        match policy.map(|name| (name, policy_id(self.policies, name))) {
            Some((_, Some(id))) => Action::Policy(id),
            Some((policy, None)) if policy_refused(self.declarations, self.policies, policy) => {
                self.unresolved = true;
                Action::Deny
            }
            Some((policy, None)) => {
                self.diagnostics.push(diags::wanroute_unknown_policy(
                    self.at(&pointer.key("wanPolicy")),
                    policy,
                    self.policies.keys().map(String::as_str),
                ));
                Action::Deny
            }
            None => Action::Deny,
        }
    }

    /// The rules that can never match, each under an earlier rule that takes its requests.
    fn shadowed(&mut self, rules: &[Rule]) -> Vec<usize> {
        let mut shadowed = Vec::new();
        let rule_at = |i: usize| self.input.at(self.doc, &fields("spec.rules").index(i));
        for (j, rule) in rules.iter().enumerate() {
            let covering = rules[..j].iter().position(|earlier| {
                rule.matches
                    .iter()
                    .all(|m| earlier.matches.iter().any(|e| m.covered_by(e)))
            });
            if let Some(i) = covering {
                shadowed.push(j);
                self.diagnostics.push(diags::wanroute_shadowed_rule(
                    rule_at(j),
                    &rule.name,
                    &rules[i].name,
                    rule_at(i),
                ));
            }
        }
        shadowed
    }

    /// The exporters' gateways refuse what the route denies with an AuthorizationPolicy,
    /// which has neither rule order nor regular expressions nor query parameters: refuse a
    /// route whose denies it cannot state exactly. A deny rule must not overlap an earlier
    /// allowing rule (the sidecar would allow what the gateway denies); with a default deny,
    /// every allowing rule must be stated too, as the gateway's allow list.
    fn ingress(&mut self, rules: &[Rule], shadowed: &[usize], default: &Action) {
        let live = || {
            rules
                .iter()
                .enumerate()
                .filter(|(j, _)| !shadowed.contains(j))
        };
        if *default != Action::Deny && live().all(|(_, r)| r.action != Action::Deny) {
            return;
        }
        let rule_pointer = |i: usize| fields("spec.rules").index(i);
        for (i, rule) in live() {
            let denies = rule.action == Action::Deny;
            if !denies && *default != Action::Deny {
                continue;
            }
            for (j, m) in rule.matches.iter().enumerate() {
                if let Err(part) = m.authorization() {
                    let why = Unenforceable::Match {
                        rule: &rule.name,
                        denies,
                        part: &part,
                    };
                    let at = self.at(&rule_pointer(i).key("matches").index(j));
                    self.diagnostics
                        .push(diags::wanroute_ingress_unenforceable(at, why));
                }
            }
            if !denies {
                continue;
            }
            let overlapping = live()
                .take_while(|(k, _)| *k < i)
                .find(|(_, earlier)| earlier.action != Action::Deny && !earlier.disjoint(rule));
            if let Some((k, earlier)) = overlapping {
                let why = Unenforceable::Overlap {
                    rule: &rule.name,
                    earlier: &earlier.name,
                    at: self.at(&rule_pointer(k)),
                };
                let at = self.at(&rule_pointer(i));
                self.diagnostics
                    .push(diags::wanroute_ingress_unenforceable(at, why));
            }
        }
    }

    fn http_match(&mut self, raw: &spec::HttpMatch, base: &Pointer) -> HttpMatch {
        let path = match &raw.path {
            Some(p) => {
                let matcher = string_match(p.kind.as_deref(), &p.value, MatchKind::PathPrefix);
                let at = self.at(&base.clone().fields("path.value"));
                if matcher.kind == MatchKind::RegularExpression {
                    self.check_regex(&p.value, at);
                } else if !p.value.starts_with('/') {
                    self.diagnostics
                        .push(diags::wanroute_path_invalid(at, &p.value));
                }
                matcher
            }
            None => StringMatch {
                kind: MatchKind::PathPrefix,
                value: "/".into(),
            },
        };
        let headers = self.named(&raw.headers, &base.clone().key("headers"), true);
        let query_params = self.named(&raw.query_params, &base.clone().key("queryParams"), false);
        HttpMatch {
            path,
            method: raw.method.clone(),
            headers,
            query_params,
        }
    }

    /// Header (case-insensitive names) or query parameter matches.
    fn named(
        &mut self,
        list: &[spec::ValueMatch],
        base: &Pointer,
        headers: bool,
    ) -> Vec<NamedMatch> {
        let mut out: Vec<NamedMatch> = list
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let matcher = string_match(v.kind.as_deref(), &v.value, MatchKind::Exact);
                if matcher.kind == MatchKind::RegularExpression {
                    let at = self.at(&base.clone().index(k).key("value"));
                    self.check_regex(&v.value, at);
                }
                let name = if headers {
                    v.name.to_ascii_lowercase()
                } else {
                    v.name.clone()
                };
                NamedMatch { name, matcher }
            })
            .collect();
        // Gateway API keys these lists by name (a list-map; header names case-insensitive),
        // so the API server refuses a name given twice.
        let mut seen = BTreeSet::new();
        for (k, n) in out.iter().enumerate() {
            if !seen.insert(n.name.clone()) {
                let at = self.at(&base.clone().index(k).key("name"));
                self.diagnostics
                    .push(diags::wanroute_match_duplicate(at, &n.name));
            }
        }
        out.sort();
        out
    }

    /// Envoy evaluates regular expressions with RE2. Rust's `regex` shares most of its
    /// syntax and its exclusions (no backreferences, no lookaround); `re2` checks where
    /// they differ.
    fn check_regex(&mut self, value: &str, at: crate::diagnostic::Location) {
        if let Err(error) = regex::Regex::new(value) {
            let detail = error.to_string();
            let detail = detail.lines().last().unwrap_or_default().trim();
            self.diagnostics.push(diags::wanroute_invalid_regex(
                at,
                value,
                Regex::Invalid(detail),
            ));
        } else if let Some(problem) = super::re2::problem(value) {
            self.diagnostics.push(diags::wanroute_invalid_regex(
                at,
                value,
                Regex::Misread(&problem),
            ));
        }
    }
}

fn string_match(kind: Option<&str>, value: &str, default: MatchKind) -> StringMatch {
    let kind = match kind {
        Some("Exact") => MatchKind::Exact,
        Some("RegularExpression") => MatchKind::RegularExpression,
        Some("PathPrefix") => MatchKind::PathPrefix,
        _ => default,
    };
    StringMatch {
        kind,
        value: value.to_string(),
    }
}
