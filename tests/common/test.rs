//! `Test`, the one way the integration tests run the binary: a scratch directory holding a
//! copy of an example, edits to it, and runs of the real `mcwan` whose exit code is checked.
//!
//! Paths and arguments may name the scratch directories: `{in}` is the declarations
//! (`examples/<name>` copied), `{out}` the output directory beside them, `{temp}` the scratch
//! directory holding both, and `{root}` the repository. A path without one of them is
//! relative to `{in}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{apply_case, copy, parse_case, read_tree, root};

/// A scratch directory, and what the next run of the binary in it is given.
pub struct Test {
    temp: tempfile::TempDir,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    under: Vec<String>,
    cwd: Option<PathBuf>,
    code: i32,
}

/// What one run printed and how it exited.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    /// A scratch directory with nothing in it yet.
    pub fn empty() -> Test {
        Test {
            temp: tempfile::tempdir().expect("scratch directory"),
            args: Vec::new(),
            envs: Vec::new(),
            under: Vec::new(),
            cwd: None,
            code: 0,
        }
    }

    /// `examples/<name>` copied to `{in}`.
    pub fn example(name: &str) -> Test {
        let test = Test::empty();
        copy(&root().join("examples").join(name), &test.path("{in}"));
        test
    }

    /// `examples/<name>` copied to `{in}`, and its golden tree to `{out}`, as a repository
    /// with its rendered output committed.
    pub fn rendered(name: &str) -> Test {
        let test = Test::example(name);
        copy(&root().join("golden").join(name), &test.path("{out}"));
        test
    }

    /// `tests/invalid/<name>.case` applied to its base example in `{in}`.
    pub fn case(name: &str) -> Test {
        let test = Test::empty();
        let case = parse_case(&root().join(format!("tests/invalid/{name}.case")));
        apply_case(&case, &test.path("{in}"));
        test
    }

    /// `text` with the scratch directories and the repository in place of their names.
    pub fn expand(&self, text: &str) -> String {
        let temp = self.temp.path();
        text.replace("{in}", &path_string(&temp.join("repo")))
            .replace("{out}", &path_string(&temp.join("out")))
            .replace("{temp}", &path_string(temp))
            .replace("{root}", &path_string(&root()))
    }

    /// Where `file` is: relative to `{in}` unless it names another directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.temp.path().join("repo").join(self.expand(file))
    }

    pub fn read(&self, file: &str) -> String {
        let path = self.path(file);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Every file below `dir`, by `/`-separated relative path.
    pub fn tree(&self, dir: &str) -> BTreeMap<String, Vec<u8>> {
        read_tree(&self.path(dir))
    }

    /// Replaces the first `from` in `file`, which must contain it, by `to`.
    pub fn edit(&mut self, file: &str, from: &str, to: &str) -> &mut Self {
        let text = self.read(file);
        assert!(text.contains(from), "{file} has no `{from}`");
        self.write(file, text.replacen(from, to, 1))
    }

    /// Writes `file`, and the directories it needs.
    pub fn write(&mut self, file: &str, contents: impl AsRef<[u8]>) -> &mut Self {
        let path = self.path(file);
        fs::create_dir_all(path.parent().expect("a parent")).unwrap();
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    pub fn remove(&mut self, file: &str) -> &mut Self {
        let path = self.path(file);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        self
    }

    /// Makes `link` a symbolic link to `target`.
    #[cfg(unix)]
    pub fn symlink(&mut self, link: &str, target: &str) -> &mut Self {
        let path = self.path(link);
        fs::create_dir_all(path.parent().expect("a parent")).unwrap();
        std::os::unix::fs::symlink(self.path(target), path).unwrap();
        self
    }

    /// Arguments for the next run, after those already given.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        let args: Vec<String> = args.iter().map(|a| self.expand(a)).collect();
        self.args.extend(args);
        self
    }

    /// `generate -o DIR` with these options (`--clusters`, `--services`…), for the next run.
    pub fn generate(&mut self, dir: &str, options: &[&str]) -> &mut Self {
        self.args(&["generate", "-o", dir]).args(options)
    }

    /// `render {in} -o {out}`, for the next run.
    pub fn render(&mut self) -> &mut Self {
        self.args(&["render", "{in}", "-o", "{out}"])
    }

    /// `check {in} -o {out}`, for the next run.
    pub fn check(&mut self) -> &mut Self {
        self.args(&["check", "{in}", "-o", "{out}"])
    }

    /// `diff {in} -o {out}`, for the next run.
    pub fn diff(&mut self) -> &mut Self {
        self.args(&["diff", "{in}", "-o", "{out}"])
    }

    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.envs.push((key.to_string(), self.expand(value)));
        self
    }

    /// Runs the binary as the last argument of `wrapper` (`unshare --net`, `time`).
    pub fn under(&mut self, wrapper: &[&str]) -> &mut Self {
        self.under = wrapper.iter().map(|a| self.expand(a)).collect();
        self
    }

    /// Runs the binary in `dir` (the test's own directory unless given), for a test of the
    /// paths it prints.
    pub fn within(&mut self, dir: &str) -> &mut Self {
        self.cwd = Some(self.path(dir));
        self
    }

    /// The exit code the next run must have; 0 unless given.
    pub fn code(&mut self, code: i32) -> &mut Self {
        self.code = code;
        self
    }

    /// The next run as a command, for a test that checks its exit itself; it takes what was
    /// given for the run.
    pub fn command(&mut self) -> Command {
        self.code = 0;
        let under = std::mem::take(&mut self.under);
        let binary = env!("CARGO_BIN_EXE_mcwan");
        let mut command = match under.split_first() {
            Some((program, wrapper)) => {
                let mut command = Command::new(program);
                command.args(wrapper).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(std::mem::take(&mut self.args))
            .envs(std::mem::take(&mut self.envs))
            .env("NO_COLOR", "1");
        if let Some(dir) = self.cwd.take() {
            command.current_dir(dir);
        }
        command
    }

    /// Starts the next run with its output discarded, for a test that kills it or runs
    /// another beside it.
    pub fn spawn(&mut self) -> Child {
        let mut command = self.command();
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
    }

    /// Runs the binary and asserts its exit code, with all it printed if that is not the one
    /// expected.
    pub fn run(&mut self) -> Output {
        let expected = self.code;
        let mut command = self.command();
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
        let output = Output {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        };
        assert_eq!(
            output.code,
            Some(expected),
            "{command:?} exited {:?}, not {expected}\n{}",
            output.code,
            output.shown()
        );
        output
    }
}

impl Output {
    /// Stdout then stderr, as a terminal would show them.
    pub fn printed(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn stdout_has(&self, part: &str) -> &Self {
        self.has(&self.stdout, part)
    }

    pub fn stderr_has(&self, part: &str) -> &Self {
        self.has(&self.stderr, part)
    }

    fn has(&self, stream: &str, part: &str) -> &Self {
        assert!(stream.contains(part), "no `{part}` in\n{}", self.shown());
        self
    }

    /// Stdout and stderr, each under a heading, for a failure message.
    fn shown(&self) -> String {
        let mut text = String::new();
        for (name, stream) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let _ = writeln!(text, "--- {name}\n{stream}");
        }
        text
    }
}

fn path_string(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_string()
}
