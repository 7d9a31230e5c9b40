//! Helpers the integration test crates share. Each crate uses some of them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

pub mod test;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a directory tree, files and subdirectories.
pub fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn bless() -> bool {
    std::env::var_os("MCWAN_BLESS").is_some()
}

/// Every file below `dir`, by `/`-separated relative path.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut tree = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            let relative = entry.path().strip_prefix(dir).unwrap();
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            tree.insert(key, fs::read(entry.path()).unwrap());
        }
    }
    tree
}

pub fn write_tree(dir: &Path, tree: &BTreeMap<String, Vec<u8>>) {
    for (relative, bytes) in tree {
        let path = dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

pub fn example_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 2, "expected at least two examples");
    names
}

/// Asserts two trees are byte-identical, showing a unified diff of the first difference.
pub fn assert_same_tree(
    expected: &BTreeMap<String, Vec<u8>>,
    actual: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    let expected_files: Vec<_> = expected.keys().collect();
    let actual_files: Vec<_> = actual.keys().collect();
    assert_eq!(
        expected_files, actual_files,
        "{what}: the set of files differs"
    );
    for (path, bytes) in expected {
        if actual[path] != *bytes {
            let diff = similar::TextDiff::from_lines(
                std::str::from_utf8(bytes).unwrap_or("<binary>"),
                std::str::from_utf8(&actual[path]).unwrap_or("<binary>"),
            )
            .unified_diff()
            .header("expected", "actual")
            .to_string();
            panic!("{what}: {path} differs\n{diff}");
        }
    }
}

/// One `tests/invalid/*.case` file: a base example, edits to it, and the expected
/// diagnostics in `--format github`.
pub struct Case {
    pub path: PathBuf,
    pub base: String,
    pub args: Vec<String>,
    pub edits: Vec<(String, String, String)>,
    pub expect: String,
}

pub fn parse_case(path: &Path) -> Case {
    let text = fs::read_to_string(path).unwrap();
    let mut case = Case {
        path: path.to_path_buf(),
        base: String::new(),
        args: Vec::new(),
        edits: Vec::new(),
        expect: String::new(),
    };
    let mut section: Option<(String, String)> = None;
    let mut body = String::new();
    let flush =
        |section: &Option<(String, String)>, body: &mut String, case: &mut Case| match section {
            Some((verb, _)) if verb == "expect" => case.expect = std::mem::take(body),
            Some((verb, target)) => {
                case.edits
                    .push((verb.clone(), target.clone(), std::mem::take(body)));
            }
            None => body.clear(),
        };
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("--- ") {
            flush(&section, &mut body, &mut case);
            let (verb, target) = header.split_once(' ').unwrap_or((header, ""));
            section = Some((verb.to_string(), target.to_string()));
        } else if section.is_none() {
            if let Some(base) = line.strip_prefix("base: ") {
                case.base = base.to_string();
            } else if let Some(args) = line.strip_prefix("args: ") {
                case.args = args.split_whitespace().map(str::to_string).collect();
            }
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&section, &mut body, &mut case);
    case
}

pub fn apply_case(case: &Case, dir: &Path) {
    write_tree(dir, &read_tree(&root().join("examples").join(&case.base)));
    for (verb, target, body) in &case.edits {
        let path = dir.join(target);
        match verb.as_str() {
            "file" => {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, body).unwrap();
            }
            "bytes" => fs::write(
                &path,
                body.trim()
                    .split(' ')
                    .map(|b| u8::from_str_radix(b, 16).unwrap())
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
            "append" => {
                let mut text = fs::read_to_string(&path).unwrap();
                text.push_str(body);
                fs::write(&path, text).unwrap();
            }
            "remove" => fs::remove_file(&path).unwrap(),
            "symlink" => {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(body.trim(), &path).unwrap();
            }
            other => panic!("{}: unknown section `{other}`", case.path.display()),
        }
    }
}

pub fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("tests/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    files
}

/// The class of `policy` in a rendered `sdwan/classes.yaml`.
pub fn class<'a>(classes: &'a serde_json::Value, policy: &str) -> &'a serde_json::Value {
    classes["classes"]
        .as_array()
        .expect("a list of classes")
        .iter()
        .find(|c| c["policy"] == policy)
        .unwrap_or_else(|| panic!("no class of `{policy}`"))
}

/// The YAML documents of a file, as JSON values.
pub fn yaml_documents(bytes: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    yaml_serde::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}
