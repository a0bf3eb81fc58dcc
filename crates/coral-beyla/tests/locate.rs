//! Finding the Beyla binary over injected inputs.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use coral_beyla::locate::{LocateError, Search, Source, locate, version};

fn exe(path: &Path, body: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

struct Layout {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Layout {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Layout { _dir: dir, root }
    }

    fn search(&self) -> Search {
        Search {
            beyla_path: None,
            configured: None,
            coral_home: self.root.join("home"),
            path_var: Some(
                std::env::join_paths([self.root.join("p1"), PathBuf::new(), self.root.join("p2")])
                    .unwrap(),
            ),
        }
    }
}

#[test]
fn the_search_order() {
    let l = Layout::new();
    let env = exe(&l.root.join("env/beyla"), "");
    let configured = exe(&l.root.join("cfg/beyla"), "");
    let home = exe(&l.root.join("home/bin/beyla"), "");
    let p2 = exe(&l.root.join("p2/beyla"), "");

    let mut s = l.search();
    s.beyla_path = Some(env.clone());
    s.configured = Some(configured.clone());
    assert_eq!(locate(&s).unwrap().source, Source::EnvBeylaPath);
    assert_eq!(locate(&s).unwrap().path, env);

    s.beyla_path = Some(PathBuf::new()); // set but empty counts as unset
    assert_eq!(locate(&s).unwrap().source, Source::Configured);
    assert_eq!(locate(&s).unwrap().path, configured);

    s.configured = None;
    assert_eq!(locate(&s).unwrap().source, Source::CoralHome);
    assert_eq!(locate(&s).unwrap().path, home);

    std::fs::remove_file(&home).unwrap();
    let found = locate(&s).unwrap();
    assert_eq!((found.source, found.path), (Source::PathVar, p2));
}

#[test]
fn an_explicit_choice_that_is_wrong_is_an_error_naming_it() {
    let l = Layout::new();
    exe(&l.root.join("p2/beyla"), ""); // would be found, but must not be used

    let mut s = l.search();
    s.beyla_path = Some(l.root.join("missing/beyla"));
    let err = locate(&s).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            LocateError::Unusable {
                origin: Source::EnvBeylaPath,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("BEYLA_PATH") && text.contains("missing/beyla"),
        "{text}"
    );
    assert!(text.contains("does not exist"), "{text}");

    let plain = l.root.join("cfg/beyla");
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::write(&plain, "not executable").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = Search {
        configured: Some(plain),
        ..l.search()
    };
    let text = locate(&s).unwrap_err().to_string();
    assert!(
        text.contains("beyla.binary") && text.contains("not executable"),
        "{text}"
    );

    let s = Search {
        configured: Some(l.root.clone()),
        ..l.search()
    };
    let text = locate(&s).unwrap_err().to_string();
    assert!(text.contains("not a regular file"), "{text}");
}

#[test]
fn not_found_lists_every_place_searched() {
    let l = Layout::new();
    // Not executable: skipped by the search.
    std::fs::create_dir_all(l.root.join("p1")).unwrap();
    std::fs::write(l.root.join("p1/beyla"), "x").unwrap();
    // An empty $PATH entry means "." and is never searched.
    let cwd_like = std::env::current_dir().unwrap().join("beyla");

    let err = locate(&l.search()).unwrap_err();
    let LocateError::NotFound { searched } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        searched,
        &[
            l.root.join("home/bin/beyla"),
            l.root.join("p1/beyla"),
            l.root.join("p2/beyla")
        ]
    );
    assert!(!searched.contains(&cwd_like));
    let text = err.to_string();
    assert!(
        text.contains("coral beyla install") && text.contains("p2/beyla"),
        "{text}"
    );

    let s = Search {
        path_var: None::<OsString>,
        ..l.search()
    };
    let LocateError::NotFound { searched } = locate(&s).unwrap_err() else {
        panic!()
    };
    assert_eq!(searched, [l.root.join("home/bin/beyla")]);
}

#[tokio::test]
async fn version_tries_both_flag_styles() {
    let l = Layout::new();
    let double = exe(
        &l.root.join("a/beyla"),
        r#"[ "$1" = "--version" ] && echo "Beyla version: v2.7.8 (go1.22.1)" && exit 0; exit 2"#,
    );
    assert_eq!(version(&double).await.as_deref(), Some("v2.7.8"));

    let single = exe(
        &l.root.join("b/beyla"),
        r#"[ "$1" = "-version" ] && echo "3.1.0" && exit 0; echo "flag provided but not defined" >&2; exit 2"#,
    );
    assert_eq!(version(&single).await.as_deref(), Some("3.1.0"));

    let none = exe(&l.root.join("c/beyla"), "exit 1");
    assert_eq!(version(&none).await, None);
    assert_eq!(version(&l.root.join("missing")).await, None);
}

#[tokio::test]
async fn version_reads_the_banner_of_a_release_without_a_version_flag() {
    let l = Layout::new();
    let real_like = exe(
        &l.root.join("r/beyla"),
        r#"echo 'time=2025-03-19T10:00:00.000Z level=INFO msg="Grafana Beyla" Version=v2.7.8 Revision=5a3c0f1'
echo "flag provided but not defined: ${1#-}" >&2
exit 2"#,
    );
    assert_eq!(version(&real_like).await.as_deref(), Some("v2.7.8"));
}
