//! Guards the layering ARCHITECTURE.md fixes: `cita-core` depends on no I/O
//! crate and its sources name none.

use std::fs;
use std::path::{Path, PathBuf};

const ALLOWED_CORE_DEPENDENCIES: &[&str] = &[
    "anyhow",
    "async-trait",
    "jiff",
    "serde",
    "thiserror",
    "uuid",
];
/// Pure crates core may name only as optional dependencies, behind a
/// feature of its own: `utoipa` describes the JSON of the wire types serde
/// already writes (OpenAPI schemas for cita-http), with no I/O.
const OPTIONAL_CORE_DEPENDENCIES: &[&str] = &["utoipa"];
const IO_CRATES: &[&str] = &[
    "tokio", "sqlx", "axum", "hyper", "redis", "aws_", "reqwest", "std::fs", "std::net",
];

fn core_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/core")
}

/// The entries of one `[section]` of a Cargo.toml (simple `name = …`
/// lines), as (name, what follows the `=`).
fn section_entries(manifest: &str, section: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == section;
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            let key = key.trim().trim_end_matches(".workspace").trim();
            if !key.is_empty() && !key.starts_with('#') {
                entries.push((key.to_owned(), value.trim().to_owned()));
            }
        }
    }
    entries
}

#[test]
fn core_depends_only_on_pure_crates() {
    let manifest = fs::read_to_string(core_dir().join("Cargo.toml")).unwrap();
    let deps = section_entries(&manifest, "[dependencies]");
    assert!(
        !deps.is_empty(),
        "no dependencies parsed from crates/core/Cargo.toml"
    );
    for (dep, spec) in &deps {
        let optional = spec.replace(' ', "").contains("optional=true");
        assert!(
            ALLOWED_CORE_DEPENDENCIES.contains(&dep.as_str())
                || (optional && OPTIONAL_CORE_DEPENDENCIES.contains(&dep.as_str())),
            "cita-core depends on {dep}, which is not one of {ALLOWED_CORE_DEPENDENCIES:?} \
             (nor an optional one of {OPTIONAL_CORE_DEPENDENCIES:?})"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_sources_name_no_io_crate() {
    let mut files = Vec::new();
    rust_files(&core_dir().join("src"), &mut files);
    assert!(
        files.len() > 10,
        "expected the core sources, found {}",
        files.len()
    );
    for file in files {
        // `tests.rs` files are unit-test modules, compiled only under cfg(test).
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        // Unit tests may use tokio as a dev-dependency to drive async code.
        let production = text.split("#[cfg(test)]").next().unwrap_or("");
        for name in IO_CRATES {
            assert!(
                !production.contains(name),
                "{} mentions {name} outside its tests",
                file.display()
            );
        }
    }
}
