//! The README is what a user pastes: every Rust block is a complete program (no rustdoc hidden
//! lines, which GitHub and crates.io show as text) that compiles in a crate of its own with
//! exactly the README's `[dependencies]` block, the library taken from this checkout, offline.
//! Its relative links resolve, and nothing in it, the docs or the changelog talks about how
//! the project was made.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The fenced blocks of `text` whose info string starts with `lang`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            // `ignore` blocks need more than the README's dependencies: compat/ builds them.
            (None, Some(info))
                if info.split(',').next() == Some(lang) && !info.contains("ignore") =>
            {
                current = Some(String::new());
            }
            (Some(block), Some("")) => {
                out.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn readme_blocks_are_complete_programs() {
    let text = readme();
    let rust = blocks(&text, "rust");
    assert!(rust.len() >= 4, "{} Rust blocks", rust.len());
    for (i, b) in rust.iter().enumerate() {
        let hidden: Vec<&str> = b
            .lines()
            .filter(|l| l.trim_start() == "#" || l.trim_start().starts_with("# "))
            .collect();
        assert!(hidden.is_empty(), "block {i} has hidden lines: {hidden:?}");
        assert!(b.contains("fn main()"), "block {i} is not a program:\n{b}");
    }
}

/// Builds (checks) every README block with the README's dependencies. The scratch crate uses
/// this checkout's lock file and the registry cache, so it needs no network.
#[test]
fn readme_blocks_compile_with_the_readme_dependencies() {
    let text = readme();
    let deps: Vec<String> = blocks(&text, "toml")
        .into_iter()
        .filter(|b| b.starts_with("[dependencies]"))
        .collect();
    assert_eq!(deps.len(), 1, "one [dependencies] block");
    let root = root();
    let deps = deps[0].replace(
        "tracing-llm-usage = \"0.1\"",
        &format!(
            "tracing-llm-usage = {{ path = {:?} }}",
            root.display().to_string()
        ),
    );
    assert_ne!(
        deps,
        blocks(&text, "toml")[0],
        "the block names tracing-llm-usage = \"0.1\""
    );
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path();
    std::fs::create_dir_all(krate.join("examples")).unwrap();
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(krate.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"readme-check\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[workspace]\n\n{deps}"
        ),
    )
    .unwrap();
    let lock = [root.join("Cargo.lock"), root.join("../Cargo.lock")]
        .into_iter()
        .find(|p| p.exists());
    if let Some(lock) = lock {
        std::fs::copy(lock, krate.join("Cargo.lock")).unwrap();
    }
    for (i, b) in blocks(&text, "rust").iter().enumerate() {
        std::fs::write(krate.join(format!("examples/block{i}.rs")), b).unwrap();
    }
    // Its own target directory beside this build's: the library is built with the README's
    // features, not the tests' ones.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-check");
    let out = Command::new(env!("CARGO"))
        .args(["check", "--examples", "--offline", "--quiet"])
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README's blocks do not compile with its [dependencies]:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README, the changelog and every page of docs/.
fn doc_files() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    files
}

/// Every relative link of the README and the docs names a file that exists.
#[test]
fn relative_links_resolve() {
    let root = root();
    let mut broken = Vec::new();
    for file in &doc_files() {
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let path = file.parent().unwrap().join(target);
            // The crate package has no compat/, cli/ or scripts/: links there are checked
            // in the repository only.
            let outside_package = ["compat/", "cli/", "scripts/", "benches/", "examples/"]
                .iter()
                .any(|d| target.contains(d));
            let checkable = !outside_package || root.join(".git").exists();
            if checkable && !path.exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

/// The README, the docs and the changelog speak of the product, not of how it was made.
#[test]
fn the_docs_speak_of_the_product_only() {
    let words = [
        "the 2-core machine",
        "fixes the fuzzers found",
        "optional now",
        "this session",
        "this VM",
        "earlier we tried",
    ];
    let mut found = Vec::new();
    for file in &doc_files() {
        let text = std::fs::read_to_string(file).unwrap().to_lowercase();
        for w in words {
            if text.contains(&w.to_lowercase()) {
                found.push(format!("{}: {w:?}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
