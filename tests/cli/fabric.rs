//! The SD-WAN fabric's configuration agrees with the gateways: one policy edit moves both,
//! the sites' flows are those the ServiceEntries imply, a template override that breaks the
//! agreement fails, and vendor templates can be added but not injected into. Vendors are
//! opt-in: Cisco's policy and its colour rules apply only with `spec.sdwan.vendor: cisco`.

use std::collections::BTreeSet;
use std::fs;

use crate::common::test::Test;
use crate::common::{assert_same_tree, class, example_names, read_tree, root, yaml_documents};

/// The gateways and the fabric come from one intent: changing a policy's port moves the
/// listener, the pinned nodePort, every importer's endpoints and the fabric's
/// classification together, in one render.
#[test]
fn a_policy_port_change_moves_gateways_and_fabric_together() {
    let mut test = Test::example("payment");
    test.edit(
        "policies/sd-wan-priority-high.yaml",
        "port: 31111",
        "port: 31115",
    );
    test.render().run();
    let tree = test.tree("{out}");
    let text = |path: &str| String::from_utf8(tree[path].clone()).unwrap();
    assert!(
        !tree
            .values()
            .any(|b| String::from_utf8_lossy(b).contains("31111")),
        "the old port survives somewhere"
    );
    assert!(text("cluster-1/mcw-system/gateway-mcw-ingress.yaml").contains("port: 31115"));
    assert!(
        text("cluster-1/mcw-system/configmap-mcw-ingress-options.yaml").contains("nodePort: 31115")
    );
    assert!(text("cluster-2/secure/serviceentry-mcw-payment.yaml").contains("http: 31115"));
    let classes = &yaml_documents(&tree["sdwan/classes.yaml"])[0];
    assert_eq!(class(classes, "sd-wan-priority-high")["port"], 31115);
    let flows = &yaml_documents(&tree["sdwan/sites/cluster-2/flows.yaml"])[0];
    assert_eq!(flows["flows"][0]["policy"], "sd-wan-priority-high");
    assert_eq!(flows["flows"][0]["destination"]["port"], 31115);
    let cisco = text("sdwan/cisco-app-route-policy.txt");
    assert!(
        cisco.contains("destination-port 31115") && cisco.contains("source-port 31115"),
        "{cisco}"
    );
}
/// Derives the fabric's flows on its own, from the rendered ServiceEntries (a remote
/// endpoint is one flow from the importing cluster to the exporter's gateway), and
/// compares them with the sites' `flows.yaml`, whose ports must be their classes'.
#[test]
fn classification_flows_match_the_rendered_service_entries() {
    for name in example_names() {
        let tree = read_tree(&root().join("golden").join(&name));
        let classes = &yaml_documents(&tree["sdwan/classes.yaml"])[0];
        let site = |cluster: &str| {
            classes["sites"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["cluster"] == cluster)
                .unwrap()["site"]
                .as_u64()
                .unwrap()
        };
        let mut derived = BTreeSet::new();
        for (path, bytes) in &tree {
            let Some(cluster) = path
                .split('/')
                .next()
                .filter(|_| path.contains("/serviceentry-"))
            else {
                continue;
            };
            let entry = &yaml_documents(bytes)[0];
            let service = format!(
                "{}/{}",
                entry["metadata"]["namespace"].as_str().unwrap(),
                entry["spec"]["hosts"][0]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
            );
            for endpoint in entry["spec"]["endpoints"].as_array().into_iter().flatten() {
                let target = endpoint["labels"]["mcw.l7mp.io/cluster"].as_str().unwrap();
                if target == cluster {
                    continue;
                }
                for port in endpoint["ports"].as_object().unwrap().values() {
                    derived.insert((
                        endpoint["labels"]["mcw.l7mp.io/wan-policy"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                        (cluster.to_string(), site(cluster)),
                        (target.to_string(), site(target)),
                        endpoint["address"].as_str().unwrap().to_string(),
                        port.as_u64().unwrap(),
                        service.clone(),
                    ));
                }
            }
        }
        let port =
            |policy: &serde_json::Value| class(classes, policy.as_str().unwrap())["port"].clone();
        let mut listed = BTreeSet::new();
        for (path, bytes) in &tree {
            let Some(cluster) = path
                .strip_prefix("sdwan/sites/")
                .and_then(|p| p.strip_suffix("/flows.yaml"))
            else {
                continue;
            };
            let flows = &yaml_documents(bytes)[0];
            assert_eq!(flows["metadata"]["name"], cluster);
            assert_eq!(flows["site"].as_u64(), Some(site(cluster)));
            for flow in flows["flows"].as_array().unwrap() {
                assert_eq!(flow["source"]["cluster"], cluster);
                assert_eq!(
                    flow["destination"]["port"],
                    port(&flow["policy"]),
                    "{name}: flow port is not its class's port"
                );
                for service in flow["services"].as_array().unwrap() {
                    listed.insert((
                        flow["policy"].as_str().unwrap().to_string(),
                        (
                            flow["source"]["cluster"].as_str().unwrap().to_string(),
                            flow["source"]["site"].as_u64().unwrap(),
                        ),
                        (
                            flow["destination"]["cluster"].as_str().unwrap().to_string(),
                            flow["destination"]["site"].as_u64().unwrap(),
                        ),
                        flow["destination"]["address"].as_str().unwrap().to_string(),
                        flow["destination"]["port"].as_u64().unwrap(),
                        service.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
        assert!(!derived.is_empty(), "{name}: no flow crosses the SD-WAN");
        assert_eq!(
            derived, listed,
            "{name}: the sites' flows disagree with the rendered ServiceEntries"
        );
    }
}

/// A template override that breaks the agreement between gateways and fabric is a bug,
/// and the render fails loudly without touching OUT.
#[test]
fn an_override_that_disagrees_with_the_fabric_fails_the_render() {
    let mut test = Test::example("payment");
    let original = fs::read_to_string(root().join("templates/serviceentry.yaml.j2")).unwrap();
    let broken = original.replace("ports: {{ endpoint.ports }}", "ports: {http: 31999}");
    assert_ne!(broken, original);
    test.write("{temp}/templates/serviceentry.yaml.j2", broken);
    test.render().run();
    let before = test.tree("{out}");
    test.render()
        .args(&["--templates", "{temp}/templates"])
        .code(2)
        .run()
        .stderr_has("disagrees with the SD-WAN classification");
    assert_same_tree(&before, &test.tree("{out}"), "OUT after a failed render");
}

/// Another vendor is a template: an override directory may add `sdwan/*.j2`, rendered once,
/// and `sdwan/sites/*.j2`, rendered once per site. Values in text templates must be plain
/// tokens, so a crafted value cannot change their syntax.
#[test]
fn vendor_templates_can_be_added_and_cannot_be_injected() {
    let mut test = Test::example("payment");
    test.write(
        "{temp}/templates/sdwan/acme.conf.j2",
        "{% for class in fabric.classes %}class {{ class.policy }} port {{ class.port }} region {{ fabric.sites[0].region }}\n{% endfor %}",
    )
    .write(
        "{temp}/templates/sdwan/sites/acme-site.conf.j2",
        "site {{ site.site }}\n{% for flow in flows %}permit {{ flow.destination_address }} {{ flow.destination_port }}\n{% endfor %}",
    );
    let render = |test: &mut Test, input: &str, code: i32| {
        test.args(&[
            "render",
            input,
            "-o",
            "{out}",
            "--templates",
            "{temp}/templates",
        ])
        .code(code)
        .run()
    };
    let example = "{root}/examples/payment";
    render(&mut test, example, 0);
    assert_eq!(
        test.read("{out}/sdwan/acme.conf"),
        "class sd-wan-priority-high port 31111 region eu-west\nclass sd-wan-priority-low port 31112 region eu-west\n"
    );
    assert_eq!(
        test.read("{out}/sdwan/sites/cluster-2/acme-site.conf"),
        "site 200\npermit 10.111.1.29 31111\n"
    );
    // A region is a Kubernetes label value, so none can carry a line into a template...
    test.edit(
        "clusterset.yaml",
        "region: eu-west",
        "region: \"eu-west\\napply-policy evil\"",
    );
    render(&mut test, "{in}", 1).stderr_has("invalid-value");
    // ...and a template that builds one anyway cannot write it.
    test.write(
        "{temp}/templates/sdwan/acme.conf.j2",
        "region {{ fabric.sites[0].region ~ '\\napply-policy evil' }}\n",
    );
    render(&mut test, example, 2).stderr_has("is not a plain token");
    assert!(test
        .read("{out}/sdwan/acme.conf")
        .lines()
        .all(|l| !l.contains("evil")));

    // Neither a once-per-render `sdwan/sites` file, which would take the sites' directory,
    // nor a per-site template in a subdirectory.
    for bad in ["sdwan/sites.j2", "sdwan/sites/deeper/x.j2"] {
        let path = format!("{{temp}}/templates/{bad}");
        test.write(&path, "x\n");
        render(&mut test, example, 2).stderr_has("is not a plain file name directly in");
        test.remove(&path);
    }
}

/// examples/payment without `spec.sdwan.vendor` and without colours.
fn payment_without_a_vendor() -> Test {
    let mut test = Test::example("payment");
    test.edit("clusterset.yaml", "    vendor: cisco\n", "")
        .edit(
            "clusterset.yaml",
            "    colors:\n      business: biz-internet\n      default: public-internet\n",
            "",
        );
    test
}

/// Without `spec.sdwan.vendor`, tunnels are only names: `express` needs no colour, `gold`
/// (also a Cisco colour) gets none, an SLA Cisco could not express draws no warning, and
/// the fabric is the vendor-neutral files alone. With `vendor: cisco` the same repository
/// breaks Cisco's rules.
#[test]
fn without_a_vendor_tunnels_need_no_colour_and_no_cisco_policy_renders() {
    let mut test = payment_without_a_vendor();
    test.edit(
        "policies/sd-wan-priority-high.yaml",
        "tunnel: business",
        "tunnel: gold",
    )
    .edit(
        "policies/sd-wan-priority-high.yaml",
        "jitterMs: 50",
        "jitterMs: 2.5",
    )
    .edit(
        "policies/sd-wan-priority-low.yaml",
        "tunnel: default",
        "tunnel: express",
    );
    let validate = ["validate", "{in}", "--format", "github"];
    let valid = test.args(&validate).run();
    assert!(!valid.stdout.contains("sdwan-"), "{}", valid.stdout);
    test.render().run();
    let tree = test.tree("{out}");
    let fabric: Vec<&str> = tree
        .keys()
        .filter(|p| p.starts_with("sdwan/"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        fabric,
        [
            "sdwan/classes.yaml",
            "sdwan/sites/cluster-1/flows.yaml",
            "sdwan/sites/cluster-2/flows.yaml"
        ]
    );
    let classes = &yaml_documents(&tree["sdwan/classes.yaml"])[0];
    assert_eq!(class(classes, "sd-wan-priority-high")["tunnel"], "gold");
    assert_eq!(class(classes, "sd-wan-priority-low")["tunnel"], "express");
    for policy in ["sd-wan-priority-high", "sd-wan-priority-low"] {
        assert!(class(classes, policy).get("color").is_none(), "{classes}");
    }
    let summary = String::from_utf8(tree["SUMMARY.md"].clone()).unwrap();
    assert!(
        summary.contains("| sd-wan-priority-low | express | 31112 |"),
        "{summary}"
    );

    test.edit(
        "clusterset.yaml",
        "  sdwan:\n",
        "  sdwan:\n    vendor: cisco\n",
    );
    let broken = test.args(&validate).code(1).run();
    let shown = broken.printed();
    assert!(
        shown.contains("title=sdwan-tunnel-no-color::tunnel `express`")
            && !shown.contains("tunnel `gold`")
            && shown.contains("title=sdwan-sla-rounded"),
        "{shown}"
    );
}

/// `sdwan.colors` without a vendor is vendor-neutral input: `classes.yaml` carries the
/// colours it maps, and only those (`default`, a Cisco colour's name, gets none unmapped).
/// Turning the vendor off removes the Cisco policy a previous render wrote.
#[test]
fn colours_without_a_vendor_reach_only_the_classification() {
    let mut test = Test::example("payment");
    test.render().run();
    assert!(test.path("{out}/sdwan/cisco-app-route-policy.txt").exists());
    test.edit("clusterset.yaml", "    vendor: cisco\n", "")
        .edit("clusterset.yaml", "      default: public-internet\n", "");
    test.render().run();
    assert!(!test.path("{out}/sdwan/cisco-app-route-policy.txt").exists());
    let classes = &yaml_documents(test.read("{out}/sdwan/classes.yaml").as_bytes())[0];
    assert_eq!(
        class(classes, "sd-wan-priority-high")["color"],
        "biz-internet"
    );
    assert!(class(classes, "sd-wan-priority-low").get("color").is_none());
    let summary = test.read("{out}/SUMMARY.md");
    assert!(
        summary.contains("| sd-wan-priority-high | business | biz-internet | 31111 |")
            && summary.contains("| sd-wan-priority-low | default | - | 31112 |"),
        "{summary}"
    );
    test.args(&["status", "secure/payment", "{in}"])
        .run()
        .stdout_has("sd-wan-priority-high: tunnel business (colour biz-internet), port 31111");
    test.args(&["status", "insecure/logging", "{in}"])
        .run()
        .stdout_has("sd-wan-priority-low: tunnel default, port 31112");
}

/// A user's own template under `sdwan/` renders whatever the vendor; an override of
/// Cisco's template needs `vendor: cisco`, or it would be ignored, so the render refuses
/// it. A text template cannot print a colour that is not there.
#[test]
fn own_vendor_templates_render_without_a_vendor() {
    let mut test = payment_without_a_vendor();
    test
        .write(
            "{temp}/templates/sdwan/acme.conf.j2",
            "{% for class in fabric.classes %}class {{ class.tunnel }} port {{ class.port }}\n{% endfor %}",
        );
    let render = |test: &mut Test, code: i32| {
        test.render()
            .args(&["--templates", "{temp}/templates"])
            .code(code)
            .run()
    };
    render(&mut test, 0);
    assert_eq!(
        test.read("{out}/sdwan/acme.conf"),
        "class business port 31111\nclass default port 31112\n"
    );
    assert!(!test.path("{out}/sdwan/cisco-app-route-policy.txt").exists());

    test.write(
        "{temp}/templates/sdwan/acme.conf.j2",
        "{% for class in fabric.classes %}colour {{ class.color }}\n{% endfor %}",
    );
    render(&mut test, 2).stderr_has("a value is none");

    test.remove("{temp}/templates/sdwan/acme.conf.j2").write(
        "{temp}/templates/sdwan/cisco-app-route-policy.txt.j2",
        "vendor {{ fabric.vendor }}\n",
    );
    let before = test.tree("{out}");
    render(&mut test, 2).stderr_has("renders only with `spec.sdwan.vendor: cisco`");
    assert_same_tree(&before, &test.tree("{out}"), "OUT after a refused override");
    test.edit(
        "clusterset.yaml",
        "  sdwan:\n",
        "  sdwan:\n    vendor: cisco\n",
    );
    render(&mut test, 1).stderr_has("sdwan-tunnel-no-color");
    test.edit(
        "clusterset.yaml",
        "    vendor: cisco\n",
        "    vendor: cisco\n    colors: {business: biz-internet, default: public-internet}\n",
    );
    render(&mut test, 0);
    assert_eq!(
        test.read("{out}/sdwan/cisco-app-route-policy.txt"),
        "vendor cisco\n"
    );
}

/// Over every example: the Cisco policy is rendered exactly when the ClusterSet names the
/// vendor, and a class has a colour exactly when Cisco is the vendor or `sdwan.colors`
/// maps its tunnel. Both kinds of example exist, so neither half holds vacuously.
#[test]
fn the_cisco_policy_renders_exactly_when_the_vendor_is_cisco() {
    let mut vendors = BTreeSet::new();
    for name in example_names() {
        let clusterset = fs::read(root().join("examples").join(&name).join("clusterset.yaml"));
        let sdwan = yaml_documents(&clusterset.unwrap())[0]["spec"]["sdwan"].clone();
        let cisco = sdwan["vendor"] == "cisco";
        vendors.insert(cisco);
        let tree = read_tree(&root().join("golden").join(&name));
        assert_eq!(
            tree.contains_key("sdwan/cisco-app-route-policy.txt"),
            cisco,
            "{name}: the Cisco policy and `vendor: {}`",
            sdwan["vendor"]
        );
        let classes = &yaml_documents(&tree["sdwan/classes.yaml"])[0];
        for class in classes["classes"].as_array().unwrap() {
            let tunnel = class["tunnel"].as_str().unwrap();
            let mapped = sdwan["colors"].get(tunnel).is_some();
            assert_eq!(
                class.get("color").is_some(),
                cisco || mapped,
                "{name}: colour of tunnel `{tunnel}`"
            );
        }
    }
    assert_eq!(
        vendors.len(),
        2,
        "no example without a vendor, or none with Cisco"
    );
}
