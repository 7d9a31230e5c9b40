//! Pass 6: WANRoutes. Each refines an export of the same cluster, names declared WAN
//! policies, uses valid paths and RE2 expressions, and has no rule an earlier one shadows.
//! A valid route replaces its export's policies with exactly those its rules name.

use std::collections::BTreeMap;

use crate::check::documents::{quoted, Declarations};
use crate::check::topology::Topology;
use crate::conventions::POLICY_ANNOTATION;
use crate::diagnostic::{did_you_mean, Code, Diagnostic, Diagnostics};
use crate::model::{
    Action, Export, HttpMatch, MatchKind, NamedMatch, Rule, StringMatch, WanPolicy, WanRoute,
};
use crate::source::Sources;
use crate::spec;

pub fn check(
    sources: &Sources,
    declarations: &Declarations,
    topology: &Topology,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    exports: &mut [(Export, usize)],
    diagnostics: &mut Diagnostics,
) {
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (cluster, raw) in &declarations.routes {
        if !topology.by_name.contains_key(cluster) {
            continue;
        }
        let meta = &raw.value.metadata;
        let namespace = meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let shown = format!("{namespace}/{}", meta.name);
        let at = |pointer: &str| Some(sources.at(raw.doc, pointer));
        if let Some(first) = seen.insert(
            (cluster.clone(), namespace.clone(), meta.name.clone()),
            raw.doc,
        ) {
            diagnostics.push(
                Diagnostic::error(
                    Code::ObjectDuplicate,
                    at("/metadata/name"),
                    format!("WANRoute `{shown}` is declared twice in cluster `{cluster}`"),
                )
                .also(
                    Some(sources.at(first, "/metadata/name")),
                    "first declared here",
                ),
            );
            continue;
        }
        let c = topology.by_name[cluster];
        let Some((export, export_doc)) = exports
            .iter_mut()
            .find(|(e, _)| e.cluster == c && e.namespace == namespace && e.name == meta.name)
        else {
            if !declarations.is_broken("ServiceExport", Some(cluster), &namespace, &meta.name) {
                diagnostics.push(
                    Diagnostic::error(Code::WanrouteNoExport, at("/metadata/name"), format!("WANRoute `{shown}` in cluster `{cluster}` refines no ServiceExport"))
                        .hint("a WANRoute has the name and namespace of the ServiceExport it refines, in the same cluster"),
                );
            }
            continue;
        };
        let Some(route) = route(sources, raw.doc, &raw.value.spec, policies, diagnostics) else {
            continue;
        };
        let used = route.policies();
        if used.is_empty() {
            diagnostics.push(
                Diagnostic::error(
                    Code::WanrouteDeniesAll,
                    at("/spec"),
                    format!("WANRoute `{shown}` denies every request"),
                )
                .hint("give a rule or the default a `wanPolicy`, or remove the export"),
            );
            continue;
        }
        if let Some(annotated) = export.annotations.get(POLICY_ANNOTATION) {
            if !used.contains(annotated) {
                let pointer = format!(
                    "/metadata/annotations/{}",
                    crate::source::pointer_segment(POLICY_ANNOTATION)
                );
                diagnostics.push(
                    Diagnostic::warning(
                        Code::WanrouteAnnotationIgnored,
                        Some(sources.at(*export_doc, &pointer)),
                        format!("export `{shown}` is refined by a WANRoute that never uses its annotated policy `{annotated}`"),
                    )
                    .also(at("/spec"), "the WANRoute decides the policies")
                    .hint(format!("the export uses {}; drop the annotation or use the policy in a rule", quoted(&used))),
                );
            }
        }
        export.policies = used;
        export.route = Some(route);
    }
}

fn route(
    sources: &Sources,
    doc: usize,
    spec: &spec::WanRouteSpec,
    policies: &BTreeMap<String, (WanPolicy, usize)>,
    diagnostics: &mut Diagnostics,
) -> Option<WanRoute> {
    let at = |pointer: &str| Some(sources.at(doc, pointer));
    let errors_before = diagnostics.errors();
    let mut ok = true;
    let mut action =
        |raw: Option<&spec::RouteAction>, pointer: &str, diagnostics: &mut Diagnostics| -> Action {
            match raw.and_then(|a| a.wan_policy.as_ref()) {
                Some(policy) if policies.contains_key(policy) => Action::Policy(policy.clone()),
                Some(policy) => {
                    let mut diagnostic = Diagnostic::error(
                        Code::WanrouteUnknownPolicy,
                        at(&format!("{pointer}/wanPolicy")),
                        format!("WANRoute names unknown WAN policy `{policy}`"),
                    );
                    if let Some(s) = did_you_mean(policy, policies.keys().map(String::as_str)) {
                        diagnostic = diagnostic.hint(format!("did you mean `{s}`?"));
                    }
                    diagnostics.push(diagnostic);
                    ok = false;
                    Action::Deny
                }
                None => Action::Deny,
            }
        };
    let mut rules = Vec::new();
    for (i, raw) in spec.rules.iter().enumerate() {
        let base = format!("/spec/rules/{i}");
        let name = raw
            .name
            .clone()
            .unwrap_or_else(|| format!("rule-{}", i + 1));
        let matches = raw
            .matches
            .iter()
            .enumerate()
            .map(|(j, m)| http_match(m, &format!("{base}/matches/{j}"), &at, diagnostics))
            .collect();
        let action = action(Some(&raw.action), &base, diagnostics);
        rules.push(Rule {
            name,
            matches,
            action,
        });
    }
    let default = action(spec.default.as_ref(), "/spec/default", diagnostics);
    if !ok || diagnostics.errors() > errors_before {
        return None;
    }
    let mut shadowed = Vec::new();
    for (j, rule) in rules.iter().enumerate() {
        let covering = rules[..j].iter().position(|earlier| {
            rule.matches
                .iter()
                .all(|m| earlier.matches.iter().any(|e| m.covered_by(e)))
        });
        if let Some(i) = covering {
            shadowed.push(j);
            diagnostics.push(
                Diagnostic::warning(
                    Code::WanrouteShadowedRule,
                    at(&format!("/spec/rules/{j}")),
                    format!("rule `{}` can never match: every request it matches, the earlier rule `{}` takes", rule.name, rules[i].name),
                )
                .also(at(&format!("/spec/rules/{i}")), format!("rule `{}` comes first", rules[i].name))
                .hint("move the more specific rule before the more general one"),
            );
        }
    }
    ingress(&rules, &shadowed, &default, &at, diagnostics);
    // A rule that can never match is left out, so that no listener accepts its requests.
    let rules = rules
        .into_iter()
        .enumerate()
        .filter(|(j, _)| !shadowed.contains(j))
        .map(|(_, r)| r)
        .collect();
    Some(WanRoute { rules, default })
}

/// The exporters' gateways refuse what the route denies with an AuthorizationPolicy, which
/// has neither rule order nor regular expressions nor query parameters: refuse a route whose
/// denies it cannot state exactly. A deny rule must not overlap an earlier allowing rule
/// (the sidecar would allow what the gateway denies); with a default deny, every allowing
/// rule must be stated too, as the gateway's allow list.
fn ingress(
    rules: &[Rule],
    shadowed: &[usize],
    default: &Action,
    at: &dyn Fn(&str) -> Option<crate::diagnostic::Location>,
    diagnostics: &mut Diagnostics,
) {
    let live = || {
        rules
            .iter()
            .enumerate()
            .filter(|(j, _)| !shadowed.contains(j))
    };
    if *default != Action::Deny && live().all(|(_, r)| r.action != Action::Deny) {
        return;
    }
    for (i, rule) in live() {
        let denies = rule.action == Action::Deny;
        if !denies && *default != Action::Deny {
            continue;
        }
        for (j, m) in rule.matches.iter().enumerate() {
            if let Err(part) = m.authorization() {
                let effect = if denies {
                    "denies"
                } else {
                    "allows, while the default denies"
                };
                diagnostics.push(
                    Diagnostic::error(
                        Code::WanrouteIngressUnenforceable,
                        at(&format!("/spec/rules/{i}/matches/{j}")),
                        format!("rule `{}` {effect}, and the exporters' gateways cannot state {part} in an AuthorizationPolicy", rule.name),
                    )
                    .hint("use exact or prefix paths and exact header values in rules that deny, or in every rule when the default denies"),
                );
            }
        }
        if !denies {
            continue;
        }
        let overlapping = live()
            .take_while(|(k, _)| *k < i)
            .find(|(_, earlier)| earlier.action != Action::Deny && !earlier.disjoint(rule));
        if let Some((k, earlier)) = overlapping {
            diagnostics.push(
                Diagnostic::error(
                    Code::WanrouteIngressUnenforceable,
                    at(&format!("/spec/rules/{i}")),
                    format!("rule `{}` denies requests that the earlier rule `{}` may allow; the exporters' gateways have no rule order and would deny them too", rule.name, earlier.name),
                )
                .also(at(&format!("/spec/rules/{k}")), format!("rule `{}` comes first", earlier.name))
                .hint("move the deny rule before the rule it overlaps, or make their matches differ by method, path or an exact header value"),
            );
        }
    }
}

fn http_match(
    raw: &spec::HttpMatch,
    base: &str,
    at: &dyn Fn(&str) -> Option<crate::diagnostic::Location>,
    diagnostics: &mut Diagnostics,
) -> HttpMatch {
    let path = match &raw.path {
        Some(p) => {
            let matcher = string_match(p.kind.as_deref(), &p.value, MatchKind::PathPrefix);
            if matcher.kind == MatchKind::RegularExpression {
                check_regex(&p.value, &format!("{base}/path/value"), at, diagnostics);
            } else if !p.value.starts_with('/') {
                diagnostics.push(
                    Diagnostic::error(
                        Code::WanroutePathInvalid,
                        at(&format!("{base}/path/value")),
                        format!("path `{}` does not start with `/`", p.value),
                    )
                    .hint(format!("write `/{}`", p.value)),
                );
            }
            matcher
        }
        None => StringMatch {
            kind: MatchKind::PathPrefix,
            value: "/".into(),
        },
    };
    let mut named = |list: &[spec::ValueMatch], field: &str| -> Vec<NamedMatch> {
        let mut out: Vec<NamedMatch> = list
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let matcher = string_match(v.kind.as_deref(), &v.value, MatchKind::Exact);
                if matcher.kind == MatchKind::RegularExpression {
                    check_regex(
                        &v.value,
                        &format!("{base}/{field}/{k}/value"),
                        at,
                        diagnostics,
                    );
                }
                let name = if field == "headers" {
                    v.name.to_ascii_lowercase()
                } else {
                    v.name.clone()
                };
                NamedMatch { name, matcher }
            })
            .collect();
        // Gateway API keys these lists by name (a list-map; header names case-insensitive),
        // so the API server refuses a name given twice.
        let mut seen = std::collections::BTreeSet::new();
        for (k, n) in out.iter().enumerate() {
            if !seen.insert(n.name.clone()) {
                diagnostics.push(
                    Diagnostic::error(
                        Code::WanrouteMatchDuplicate,
                        at(&format!("{base}/{field}/{k}/name")),
                        format!("`{}` is matched twice in one match", n.name),
                    )
                    .hint("a match names each header or query parameter once; to accept either of two values, write two matches"),
                );
            }
        }
        out.sort();
        out
    };
    let headers = named(&raw.headers, "headers");
    let query_params = named(&raw.query_params, "queryParams");
    HttpMatch {
        path,
        method: raw.method.clone(),
        headers,
        query_params,
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

/// Envoy evaluates regular expressions with RE2. Rust's `regex` shares most of its syntax
/// and its exclusions (no backreferences, no lookaround); `re2` checks where they differ.
fn check_regex(
    value: &str,
    pointer: &str,
    at: &dyn Fn(&str) -> Option<crate::diagnostic::Location>,
    diagnostics: &mut Diagnostics,
) {
    if let Err(error) = regex::Regex::new(value) {
        let detail = error
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        diagnostics.push(
            Diagnostic::error(
                Code::WanrouteInvalidRegex,
                at(pointer),
                format!("`{value}` is not a valid RE2 regular expression: {detail}"),
            )
            .hint("Envoy uses RE2: no backreferences and no lookaround"),
        );
    } else if let Some(problem) = super::re2::problem(value) {
        diagnostics.push(
            Diagnostic::error(
                Code::WanrouteInvalidRegex,
                at(pointer),
                format!("`{value}` is not a regular expression Envoy accepts as meant: {problem}"),
            )
            .hint("Envoy uses RE2 (github.com/google/re2/wiki/Syntax)"),
        );
    }
}
