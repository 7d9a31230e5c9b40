//! Embeds every file under `templates/` and `schemas/`, so that a template or an output
//! schema is added by adding its file: no list in the code names them. Names are
//! sorted, so the generated code does not depend on the order the directory lists them in.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let mut code = String::new();
    for (constant, directory) in [
        ("TEMPLATE_FILES", "templates"),
        ("INPUT_SCHEMA_FILES", "schemas/input"),
        ("OUTPUT_SCHEMA_FILES", "schemas/output"),
    ] {
        println!("cargo:rerun-if-changed={directory}");
        let mut names = Vec::new();
        files(Path::new(directory), "", &mut names)?;
        names.sort();
        let _ = writeln!(code, "pub const {constant}: &[(&str, &str)] = &[");
        for name in names {
            let _ = writeln!(
                code,
                "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{directory}/{name}\"))),"
            );
        }
        code.push_str("];\n");
    }
    let out = env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR is not set"))?;
    fs::write(Path::new(&out).join("embedded.rs"), code)
}

/// Every regular file below `directory`, by `/`-separated path relative to it.
fn files(directory: &Path, prefix: &str, names: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(directory)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|name| {
            io::Error::other(format!("`{}` is not UTF-8", name.to_string_lossy()))
        })?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files(&entry.path(), &format!("{prefix}{name}/"), names)?;
        } else if kind.is_file() {
            names.push(format!("{prefix}{name}"));
        }
    }
    Ok(())
}
