//! How commands print the paths of the files they read and compare: from the current
//! directory, as the user named DIR and OUT, or below `--path-prefix` in DIR's place.
//! Lexical only: it reads no file and resolves no link. Loading and editing keep using
//! paths within DIR; only what is printed changes.

use std::path::{Component, Path, PathBuf};

/// Where printed paths start.
#[derive(Debug, Clone)]
pub struct Paths {
    /// DIR as given, or the prefix that replaces it.
    root: PathBuf,
    /// With a prefix, OUT is printed by its place relative to DIR: DIR and the current
    /// directory, both absolute. `None` prints OUT as given.
    rebase: Option<(PathBuf, PathBuf)>,
}

impl Paths {
    /// Paths below `dir` as given, or below `prefix` in its place. `cwd` makes DIR and OUT
    /// comparable when one is absolute and the other is not.
    #[must_use]
    pub fn new(dir: &Path, prefix: Option<&Path>, cwd: &Path) -> Paths {
        match prefix {
            None => Paths {
                root: dir.to_path_buf(),
                rebase: None,
            },
            Some(prefix) => Paths {
                root: prefix.to_path_buf(),
                rebase: Some((normal(&cwd.join(dir)), cwd.to_path_buf())),
            },
        }
    }

    /// A declaration file, by its path within DIR: `examples/x` and `policies/a.yaml` are
    /// `examples/x/policies/a.yaml`.
    #[must_use]
    pub fn declaration(&self, file: &Path) -> String {
        shown(&self.root.join(file))
    }

    /// A file of `out`, by its `/`-separated path within it. With a prefix, OUT is first
    /// found relative to DIR (`DIR/../rendered`), so that the prefix replaces DIR there too.
    #[must_use]
    pub fn output(&self, out: &Path, file: &str) -> String {
        let out = match &self.rebase {
            None => out.to_path_buf(),
            Some((dir, cwd)) => self.root.join(relative(&normal(&cwd.join(out)), dir)),
        };
        shown(&out.join(file))
    }
}

/// `path` without `.` components and with each `..` taking back the name before it, where
/// there is one; `.` when nothing is left.
fn normal(path: &Path) -> PathBuf {
    let mut kept: Vec<Component> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match kept.last() {
                Some(Component::Normal(_)) => {
                    kept.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => kept.push(component),
            },
            other => kept.push(other),
        }
    }
    if kept.is_empty() {
        return PathBuf::from(".");
    }
    kept.iter().collect()
}

fn shown(path: &Path) -> String {
    normal(path).display().to_string()
}

/// `path` as seen from `base`, both absolute and normal: the `..` that climb from `base`
/// to where they part, then the rest of `path`.
fn relative(path: &Path, base: &Path) -> PathBuf {
    let (path, base): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let up = base[common..].iter().map(|_| Component::ParentDir);
    up.chain(path[common..].iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &str, prefix: Option<&str>) -> Paths {
        Paths::new(
            Path::new(dir),
            prefix.map(Path::new),
            Path::new("/home/ci/work"),
        )
    }

    #[test]
    fn declarations_are_printed_from_the_current_directory() {
        let file = Path::new("policies/a.yaml");
        assert_eq!(
            paths("./examples/x", None).declaration(file),
            "examples/x/policies/a.yaml"
        );
        assert_eq!(paths(".", None).declaration(file), "policies/a.yaml");
        assert_eq!(
            paths("/srv/repo/", None).declaration(file),
            "/srv/repo/policies/a.yaml"
        );
        assert_eq!(paths("a/../b", None).declaration(file), "b/policies/a.yaml");
        assert_eq!(
            paths("../up", None).declaration(file),
            "../up/policies/a.yaml"
        );
        assert_eq!(
            paths("/srv/repo", Some("mesh")).declaration(file),
            "mesh/policies/a.yaml"
        );
        assert_eq!(paths("x", Some(".")).declaration(file), "policies/a.yaml");
    }

    #[test]
    fn output_files_follow_out_or_its_place_beside_dir() {
        let file = "cluster-1/a.yaml";
        assert_eq!(
            paths(".", None).output(Path::new("./rendered"), file),
            "rendered/cluster-1/a.yaml"
        );
        assert_eq!(
            paths(".", None).output(Path::new("/tmp/out"), file),
            "/tmp/out/cluster-1/a.yaml"
        );
        // With a prefix, OUT is found from DIR, whichever of them is absolute.
        let mesh = paths("/home/ci/work/mesh", Some("mono/mesh"));
        assert_eq!(
            mesh.output(Path::new("mesh/rendered"), file),
            "mono/mesh/rendered/cluster-1/a.yaml"
        );
        assert_eq!(
            mesh.output(Path::new("/home/ci/work/out"), file),
            "mono/out/cluster-1/a.yaml"
        );
        assert_eq!(
            paths("mesh", Some(".")).output(Path::new("/home/ci/work/out"), file),
            "../out/cluster-1/a.yaml"
        );
    }
}
