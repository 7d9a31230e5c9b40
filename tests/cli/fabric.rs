//! The SD-WAN fabric's configuration agrees with the gateways: one policy edit moves both,
//! the sites' flows are those the ServiceEntries imply, a template override that breaks the
//! agreement fails, and vendor templates can be added but not injected into.

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
