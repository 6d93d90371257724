//! Files and directories the layer creates are private: no permission for others (files 0640,
//! directories 0750 by default on Unix, configurable). Files that existed before keep their
//! mode.
//!
//! tracing-appender creates its files with the process's default mode, so the current
//! period's file is created here first, with the mode, before the appender opens it; a file
//! the appender makes at a rotation that falls between that check and its write gets the mode
//! right after.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, Time};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::fmt::MakeWriter;

/// The modes of what the layer creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Modes {
    pub(crate) file: u32,
    pub(crate) dir: u32,
}

impl Default for Modes {
    fn default() -> Self {
        Self {
            file: 0o640,
            dir: 0o750,
        }
    }
}

/// Creates `dir` and its missing parents with the directory mode.
pub(crate) fn create_dir(dir: &Path, modes: Modes) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, modes.dir);
    #[cfg(not(unix))]
    let _ = modes;
    b.create(dir)
}

/// Creates `path` empty with the file mode unless it exists; whether it was created.
pub(crate) fn create_file(path: &Path, modes: Modes) -> io::Result<bool> {
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, modes.file);
    #[cfg(not(unix))]
    let _ = modes;
    match o.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

const PREFIX: &str = "llm_usage";
const SUFFIX: &str = "jsonl";
const MINUTE: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]-[hour]-[minute]");
const HOUR: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]-[hour]");
const DAY: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// The name tracing-appender gives the file of the period holding `now`.
fn file_name(rotation: &Rotation, now: OffsetDateTime) -> String {
    let midnight = Time::MIDNIGHT;
    let (start, format) = match *rotation {
        Rotation::NEVER => return format!("{PREFIX}.{SUFFIX}"),
        Rotation::MINUTELY => (now.replace_second(0).unwrap_or(now), MINUTE),
        Rotation::HOURLY => (
            now.replace_time(Time::from_hms(now.hour(), 0, 0).unwrap_or(midnight)),
            HOUR,
        ),
        Rotation::WEEKLY => {
            let back = Duration::days(now.weekday().number_days_from_sunday().into());
            ((now - back).replace_time(midnight), DAY)
        }
        _ => (now.replace_time(midnight), DAY),
    };
    let date = start.format(format).unwrap_or_default();
    format!("{PREFIX}.{date}.{SUFFIX}")
}

/// A rolling file appender whose new files are private.
pub(crate) struct PrivateRolling {
    appender: RollingFileAppender,
    dir: PathBuf,
    rotation: Rotation,
    modes: Modes,
    /// Files there before the layer started: their mode is the user's.
    existed: HashSet<String>,
    /// The last file name seen made private (or left alone).
    settled: Mutex<String>,
}

impl PrivateRolling {
    /// Creates the directory and the current file with their modes, then the appender.
    pub(crate) fn new(dir: &Path, rotation: Rotation, modes: Modes) -> Result<Self, crate::Error> {
        create_dir(dir, modes).map_err(|source| crate::Error::LogDir {
            path: dir.to_owned(),
            source,
        })?;
        let existed: HashSet<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        // The appender opens its first file when it is built: make it first, privately.
        let first = file_name(&rotation, OffsetDateTime::now_utc());
        create_file(&dir.join(&first), modes).map_err(|source| crate::Error::LogDir {
            path: dir.join(&first),
            source,
        })?;
        let files = Self {
            appender: RollingFileAppender::builder()
                .rotation(rotation.clone())
                .filename_prefix(PREFIX)
                .filename_suffix(SUFFIX)
                .build(dir)
                .map_err(crate::Error::Appender)?,
            dir: dir.to_owned(),
            rotation,
            modes,
            existed,
            settled: Mutex::new(String::new()),
        };
        Ok(files)
    }

    /// Makes the current period's file private if the layer made it (before the appender
    /// writes to a new one, and after, for a rotation in between).
    fn settle(&self) {
        let name = file_name(&self.rotation, OffsetDateTime::now_utc());
        let Ok(mut settled) = self.settled.lock() else {
            return;
        };
        if *settled == name {
            return;
        }
        let path = self.dir.join(&name);
        match create_file(&path, self.modes) {
            Ok(true) => {}
            // There already: made by the appender at a rotation, or by the user before.
            Ok(false) if !self.existed.contains(&name) => set_mode(&path, self.modes.file),
            _ => {}
        }
        *settled = name;
    }
}

/// A write through the appender, with the current file made private around it.
pub(crate) struct PrivateWriter<'a> {
    files: &'a PrivateRolling,
    inner: <RollingFileAppender as MakeWriter<'a>>::Writer,
}

impl Write for PrivateWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.files.settle();
        let n = self.inner.write(buf)?;
        self.files.settle();
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.files.settle();
        self.inner.write_all(buf)?;
        self.files.settle();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<'a> MakeWriter<'a> for PrivateRolling {
    type Writer = PrivateWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        PrivateWriter {
            files: self,
            inner: self.appender.make_writer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_match_tracing_appenders() {
        let at = |s: &str| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let now = at("2025-12-14T10:30:15Z"); // a Sunday
        assert_eq!(
            file_name(&Rotation::DAILY, now),
            "llm_usage.2025-12-14.jsonl"
        );
        assert_eq!(
            file_name(&Rotation::HOURLY, now),
            "llm_usage.2025-12-14-10.jsonl"
        );
        assert_eq!(
            file_name(&Rotation::MINUTELY, now),
            "llm_usage.2025-12-14-10-30.jsonl"
        );
        assert_eq!(file_name(&Rotation::NEVER, now), "llm_usage.jsonl");
        let wednesday = at("2025-12-17T23:59:59Z");
        assert_eq!(
            file_name(&Rotation::WEEKLY, wednesday),
            "llm_usage.2025-12-14.jsonl"
        );
    }

    /// The names here and tracing-appender's agree: the file it opens is the one made here.
    #[test]
    fn the_appender_writes_to_the_file_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let files = PrivateRolling::new(dir.path(), Rotation::DAILY, Modes::default()).unwrap();
        files.make_writer().write_all(b"{}\n").unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            [file_name(&Rotation::DAILY, OffsetDateTime::now_utc())]
        );
    }
}
