//! `coral beyla install <release-tarball>`: put an official Beyla release in
//! `$CORAL_HOME/bin`.
//!
//! Beyla is not in any package registry; Grafana publishes
//! `beyla-linux-{amd64,arm64}-<tag>.tar.gz` on its GitHub releases, holding
//! `beyla`, `LICENSE`, `NOTICE` and `third_party_licenses.csv`. [`install`]:
//!
//! 1. checks the file name, and that its architecture is this host's
//!    (`amd64` ↔ `x86_64`, `arm64` ↔ `aarch64`);
//! 2. reads the archive once, refusing it if any entry is absolute or climbs
//!    out with `..`, or if `beyla` is not a regular file (a symlink or hard
//!    link could point anywhere); nothing but the top-level `beyla` and the
//!    license files is extracted;
//! 3. writes `bin/.beyla.install-<pid>` (mode 0755) and checks that it runs
//!    (`--version`, `-version` or `-h` exits 0 within [`RUN_CHECK_TIMEOUT`])
//!    **before** renaming it over `bin/beyla`, so a bad tarball never replaces
//!    a working install;
//! 4. writes the license files next to it as `beyla.LICENSE`, `beyla.NOTICE`
//!    and `beyla.third_party_licenses.csv`.

use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long the installed binary may take to answer `--version` (or `-h`).
pub const RUN_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `beyla` accepted (release binaries are well under this).
pub const MAX_BINARY_BYTES: u64 = 1 << 30;
/// The largest license file accepted.
const MAX_LICENSE_BYTES: u64 = 16 << 20;
/// Files copied next to the binary as `beyla.<name>`.
const LICENSE_FILES: [&str; 3] = ["LICENSE", "NOTICE", "third_party_licenses.csv"];

/// Why an install failed. A previous install stays in place, except after a
/// [`InstallError::Write`] while renaming files into place (which leaves the
/// license files, not the binary, replaced).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The file name is not a release asset name.
    #[error(
        "{name:?} is not an official Beyla release tarball name; expected \
         beyla-linux-<amd64|arm64>-<tag>.tar.gz from https://github.com/grafana/beyla/releases"
    )]
    BadName {
        /// The file name given.
        name: String,
    },
    /// The tarball is for another OS.
    #[error("{name} is a Beyla build for {os}; Beyla runs only on Linux (beyla-linux-*.tar.gz)")]
    WrongOs {
        /// The file name given.
        name: String,
        /// The OS in the name.
        os: String,
    },
    /// The tarball is for another architecture.
    #[error("{name} is for {arch}, but this host is {host}; download {wanted} instead")]
    WrongArch {
        /// The file name given.
        name: String,
        /// The architecture in the name.
        arch: String,
        /// This host's architecture.
        host: String,
        /// The asset name to download instead.
        wanted: String,
    },
    /// Beyla is not built for this host at all.
    #[error(
        "Beyla release binaries exist for Linux on x86_64 and aarch64 only; this host is \
         {os}/{arch}"
    )]
    UnsupportedHost {
        /// This host's OS.
        os: String,
        /// This host's architecture.
        arch: String,
    },
    /// The tarball could not be read as a gzip'd tar archive.
    #[error("cannot read {path} as a .tar.gz archive ({source}); download it again")]
    Read {
        /// The tarball.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// An entry is unsafe (absolute, `..`, a link, duplicated, too large).
    #[error("refusing to install from {path}: entry {entry:?} {problem}")]
    UnsafeEntry {
        /// The tarball.
        path: PathBuf,
        /// The entry's name in the archive.
        entry: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No top-level `beyla` entry.
    #[error(
        "{path} has no top-level `beyla` file; is it a Beyla release tarball \
         (beyla-linux-<arch>-<tag>.tar.gz)?"
    )]
    NoBinary {
        /// The tarball.
        path: PathBuf,
    },
    /// Writing under `$CORAL_HOME` failed.
    #[error("cannot write {path} ({source}); check that $CORAL_HOME/bin is writable by you")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The extracted binary does not run.
    #[error(
        "the `beyla` in {tarball} does not run here ({detail}); the tarball may be damaged or \
         for another system. Nothing was installed"
    )]
    DoesNotRun {
        /// The tarball.
        tarball: PathBuf,
        /// What happened when it was run.
        detail: String,
    },
}

/// This host's architecture as Beyla's release assets name it (`amd64`,
/// `arm64`), or `None` when no release exists for it.
pub fn asset_arch() -> Option<&'static str> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    match std::env::consts::ARCH {
        "x86_64" => Some("amd64"),
        "aarch64" => Some("arm64"),
        _ => None,
    }
}

/// Installs Beyla from a release tarball into `$CORAL_HOME/bin/beyla` and
/// returns that path; see the module docs for every check.
pub fn install(tarball: &Path, coral_home: &Path) -> Result<PathBuf, InstallError> {
    check_name(tarball)?;
    let contents = read_archive(tarball)?;
    let bin = coral_home.join("bin");
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Write { path, source }
    };
    std::fs::create_dir_all(&bin).map_err(write_err(&bin))?;

    // Every file goes to a temporary name first; the binary must run before
    // anything is renamed into place, and it is renamed last.
    let pid = std::process::id();
    let target = bin.join("beyla");
    let mut staged = Staged(Vec::new());
    let temp = bin.join(format!(".beyla.install-{pid}"));
    staged.0.push((temp.clone(), target.clone()));
    write_file(&temp, &contents.binary, 0o755).map_err(write_err(&temp))?;
    for (name, data) in &contents.licenses {
        let temp = bin.join(format!(".beyla.{name}.install-{pid}"));
        staged
            .0
            .insert(0, (temp.clone(), bin.join(format!("beyla.{name}"))));
        write_file(&temp, data, 0o644).map_err(write_err(&temp))?;
    }
    let version = check_runs(&temp).map_err(|detail| InstallError::DoesNotRun {
        tarball: tarball.to_path_buf(),
        detail,
    })?;
    while !staged.0.is_empty() {
        let (from, to) = staged.0.remove(0);
        if let Err(source) = std::fs::rename(&from, &to) {
            let _ = std::fs::remove_file(&from);
            return Err(InstallError::Write { path: to, source });
        }
    }
    if let Ok(dir) = std::fs::File::open(&bin) {
        let _ = dir.sync_all();
    }
    tracing::info!(
        path = %target.display(),
        version = version.as_deref().unwrap_or("unknown"),
        "installed beyla"
    );
    Ok(target)
}

fn check_name(tarball: &Path) -> Result<(), InstallError> {
    let name = tarball
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bad = || InstallError::BadName { name: name.clone() };
    let stem = name.strip_suffix(".tar.gz").ok_or_else(bad)?;
    let mut parts = stem.splitn(4, '-');
    let (Some("beyla"), Some(os), Some(arch), Some(tag)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if os.is_empty()
        || arch.is_empty()
        || !tag
            .trim_start_matches('v')
            .starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(bad());
    }
    if os != "linux" {
        return Err(InstallError::WrongOs {
            name: name.clone(),
            os: os.to_owned(),
        });
    }
    let host = asset_arch().ok_or_else(|| InstallError::UnsupportedHost {
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
    })?;
    if arch != host {
        return Err(InstallError::WrongArch {
            wanted: format!("beyla-linux-{host}-{tag}.tar.gz"),
            name: name.clone(),
            arch: arch.to_owned(),
            host: std::env::consts::ARCH.to_owned(),
        });
    }
    Ok(())
}

struct Contents {
    binary: Vec<u8>,
    licenses: Vec<(&'static str, Vec<u8>)>,
}

fn read_archive(tarball: &Path) -> Result<Contents, InstallError> {
    let read_err = |source| InstallError::Read {
        path: tarball.to_path_buf(),
        source,
    };
    let unsafe_entry = |entry: &str, problem: &str| InstallError::UnsafeEntry {
        path: tarball.to_path_buf(),
        entry: entry.to_owned(),
        problem: problem.to_owned(),
    };
    let file = std::fs::File::open(tarball).map_err(read_err)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let mut binary: Option<Vec<u8>> = None;
    let mut licenses = Vec::new();
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = entry.path().map_err(read_err)?.into_owned();
        let shown = path.display().to_string();
        let mut names = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(n) => names.push(n.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => return Err(unsafe_entry(&shown, "climbs out with `..`")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(unsafe_entry(&shown, "is an absolute path"));
                }
            }
        }
        let [name] = names.as_slice() else { continue };
        let (limit, license) = if name == "beyla" {
            (MAX_BINARY_BYTES, None)
        } else if let Some(l) = LICENSE_FILES.iter().find(|l| **l == name) {
            (MAX_LICENSE_BYTES, Some(*l))
        } else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(unsafe_entry(
                &shown,
                "is a link or special file, not a regular file",
            ));
        }
        let data = read_limited(entry, limit)
            .map_err(read_err)?
            .ok_or_else(|| unsafe_entry(&shown, &format!("is larger than {limit} bytes")))?;
        match license {
            None if binary.is_some() => return Err(unsafe_entry(&shown, "appears twice")),
            None => binary = Some(data),
            Some(l) => {
                licenses.retain(|(n, _)| *n != l);
                licenses.push((l, data));
            }
        }
    }
    let binary = binary.ok_or_else(|| InstallError::NoBinary {
        path: tarball.to_path_buf(),
    })?;
    Ok(Contents { binary, licenses })
}

/// Reads all of `r`, or `None` if it is longer than `limit`.
fn read_limited(r: impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    r.take(limit + 1).read_to_end(&mut data)?;
    Ok((data.len() as u64 <= limit).then_some(data))
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
    // Closed here: executing a file still open for writing fails (ETXTBSY).
}

/// Temporary files and where they go; those still here when dropped (an
/// error path) are removed.
struct Staged(Vec<(PathBuf, PathBuf)>);

impl Drop for Staged {
    fn drop(&mut self) {
        for (temp, _) in self.0.drain(..) {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Whether the extracted binary runs here: `Ok(version)` once `--version`,
/// `-version` or `-h` exits 0, or exits with any code after printing a
/// version (released Beyla prints its banner, then rejects the unknown
/// flags). A spawn error (`Exec format error` for another architecture), a
/// crash by signal or a timeout is what each attempt did, in the error.
fn check_runs(binary: &Path) -> Result<Option<String>, String> {
    let mut failures = Vec::new();
    for arg in ["--version", "-version", "-h"] {
        match run_with_timeout(binary, arg, RUN_CHECK_TIMEOUT) {
            Ok(out) => {
                let text = format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let version = crate::locate::parse_version(&text);
                if out.status.success() || (out.status.code().is_some() && version.is_some()) {
                    return Ok(version);
                }
                failures.push(format!("`beyla {arg}`: {}", out.status));
            }
            Err(e) => {
                failures.push(format!("`beyla {arg}`: {e}"));
                break;
            }
        }
    }
    Err(failures.join("; "))
}

fn run_with_timeout(binary: &Path, arg: &str, timeout: Duration) -> Result<Output, String> {
    let mut attempts = 0;
    let child = loop {
        let spawned = Command::new(binary)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        match spawned {
            // A concurrent fork may briefly hold the file we just wrote.
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && attempts < 10 =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot run it: {e}")),
            Ok(child) => break child,
        }
    };
    let pgid = i32::try_from(child.id()).map(nix::unistd::Pid::from_raw);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Err(_) => {
            if let Ok(pgid) = pgid {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            }
            Err(format!("no answer within {timeout:?}"))
        }
    }
}
