//! The files and directories the layer creates are private even under a permissive umask; files
//! that existed keep their mode. The scenario runs in a child process started with umask 000.
#![cfg(all(unix, feature = "sqlite"))]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tracing::info_span;
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::prelude::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A few calls into JSONL files under `root/new/logs` (directories the layer creates) and a
/// SQLite database, with `modes` when given.
fn scenario(root: &Path, modes: Option<(u32, u32)>) {
    let mut b = UsageLayer::builder()
        .jsonl_dir(root.join("new/logs"))
        .sqlite(root.join("usage.sqlite"));
    if let Some((file, dir)) = modes {
        b = b.file_mode(file).dir_mode(dir);
    }
    let (layer, guard) = b.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let run = info_span!("run", run_id = "private");
        let _r = run.enter();
        for _ in 0..3 {
            drop(info_span!(
                "llm_call",
                model = "gpt-4o",
                tokens.input = 10u64,
                tokens.output = 1u64
            ));
        }
    });
    assert!(guard.shutdown());
}

fn child(test: &str, root: &Path) {
    let out = Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture"])
        .env("LLM_USAGE_TEST_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn jsonl_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect()
}

#[test]
fn created_files_and_directories_are_private_under_umask_000() {
    if let Ok(root) = std::env::var("LLM_USAGE_TEST_ROOT") {
        return scenario(Path::new(&root), None);
    }
    let root = tempfile::tempdir().unwrap();
    child(
        "created_files_and_directories_are_private_under_umask_000",
        root.path(),
    );
    let logs = root.path().join("new/logs");
    assert_eq!(mode(&root.path().join("new")), 0o750);
    assert_eq!(mode(&logs), 0o750);
    let files = jsonl_files(&logs);
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0]), 0o640);
    assert_eq!(
        std::fs::read_to_string(&files[0]).unwrap().lines().count(),
        4
    );
    let db = root.path().join("usage.sqlite");
    assert_eq!(mode(&db), 0o640);
    let wal = root.path().join("usage.sqlite-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o640);
    }
    // SQLite's WAL, made while the database is open, takes the database's mode.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute("INSERT INTO llm_imports VALUES ('x', 'y', 0, 0)", [])
        .unwrap();
    assert_eq!(mode(&root.path().join("usage.sqlite-wal")), 0o640);
}

#[test]
fn modes_are_configurable_and_existing_files_keep_theirs() {
    if let Ok(root) = std::env::var("LLM_USAGE_TEST_ROOT") {
        return scenario(Path::new(&root), Some((0o600, 0o700)));
    }
    let root = tempfile::tempdir().unwrap();
    // Today's log file and the database exist already, world-readable by the user's choice.
    let logs = root.path().join("new/logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let existing = logs.join(format!("llm_usage.{today}.jsonl"));
    std::fs::write(&existing, "").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    child(
        "modes_are_configurable_and_existing_files_keep_theirs",
        root.path(),
    );
    assert_eq!(mode(&logs), 0o755);
    assert_eq!(mode(&existing), 0o644);
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap().lines().count(),
        4
    );
    assert_eq!(mode(&root.path().join("usage.sqlite")), 0o600);
}
