//! The rendered bytes depend on the declarations alone: not on file names, file splits,
//! document or key order, the locale, the time zone, or a network.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::test::Test;
use crate::common::{assert_same_tree, example_names, read_tree, root, yaml_documents};

/// A tiny deterministic generator, so permutations are reproducible without a crate.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap();
            items.swap(i, j);
        }
    }
}

/// Splits every input file into documents, then deals them into new files with random
/// names, in random order, within the same place (`policies/`, `clusters/<c>/`).
fn permute(source: &Path, target: &Path, rng: &mut Shuffle) {
    let mut by_place: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (relative, bytes) in read_tree(source) {
        let text = String::from_utf8(bytes).unwrap();
        if relative == "clusterset.yaml" {
            fs::create_dir_all(target).unwrap();
            fs::write(target.join(&relative), text).unwrap();
            continue;
        }
        let parts: Vec<&str> = relative.split('/').collect();
        let place = if parts[0] == "clusters" {
            format!("clusters/{}", parts[1])
        } else {
            parts[0].to_string()
        };
        let documents = by_place.entry(place).or_default();
        documents.extend(
            text.split("\n---\n")
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
        );
    }
    for (place, mut documents) in by_place {
        rng.shuffle(&mut documents);
        let files = 1 + usize::try_from(rng.next() % 3).unwrap();
        for (i, chunk) in documents
            .chunks(documents.len().div_ceil(files))
            .enumerate()
        {
            let name = format!("{place}/{:x}/{i}-{:x}.yaml", rng.next() % 4, rng.next());
            let path = target.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, chunk.join("\n---\n") + "\n").unwrap();
        }
    }
}

/// Rewrites a YAML document with its mapping keys in another order (as JSON, which is YAML).
fn shuffle_keys(value: &serde_json::Value, rng: &mut Shuffle) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            rng.shuffle(&mut entries);
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), shuffle_keys(v, rng)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|v| shuffle_keys(v, rng)).collect())
        }
        other => other.clone(),
    }
}

/// 20 permutations of every example (file names, files, document order, key order), and
/// other locales and time zones: the same bytes every time.
#[test]
fn output_does_not_depend_on_key_order_locale_or_time_zone() {
    let mut rng = Shuffle(0x2545_f491_4f6c_dd1d);
    for name in example_names() {
        let golden = read_tree(&root().join("golden").join(&name));
        for round in 0..20 {
            let mut test = Test::empty();
            let permuted = test.path("{temp}/permuted");
            permute(&root().join("examples").join(&name), &permuted, &mut rng);
            for (path, bytes) in read_tree(&permuted) {
                let documents = yaml_documents(&bytes);
                let text: Vec<String> = documents
                    .iter()
                    .map(|d| serde_json::to_string(&shuffle_keys(d, &mut rng)).unwrap())
                    .collect();
                test.write(&path, text.join("\n---\n") + "\n");
            }
            let (locale, zone) = [
                ("C", "UTC"),
                ("tr_TR.UTF-8", "Pacific/Chatham"),
                ("de_DE.UTF-8", "America/St_Johns"),
            ][round % 3];
            test.render()
                .env("LC_ALL", locale)
                .env("LANG", locale)
                .env("TZ", zone)
                .run();
            assert_same_tree(
                &golden,
                &test.tree("{out}"),
                &format!("{name} with shuffled keys, round {round}"),
            );
        }
    }
}

/// mcwan never needs the network: in a network namespace with no interfaces, every command
/// behaves exactly as outside it.
#[test]
fn renders_without_any_network() {
    let unshare = |flag: &str| {
        Command::new("unshare")
            .args([flag, "true"])
            .output()
            .expect("unshare (util-linux) must be installed")
    };
    let denied = unshare("--net");
    let flag = if !denied.status.success()
        && String::from_utf8_lossy(&denied.stderr).contains("unshare failed")
    {
        "-rn"
    } else {
        "--net"
    };
    let mut test = Test::example("l7-payment");
    test.under(&["unshare", flag]).render().run();
    assert_same_tree(
        &read_tree(&root().join("golden/l7-payment")),
        &test.tree("{out}"),
        "render without network",
    );
}
