//! TLS settings: [`ServerTls`] (a listener's certificate and key) and
//! [`ClientTls`] (how a client verifies the server it dials).
//!
//! File paths are taken as written: a relative path is relative to the
//! working directory of the process, not to the config file. Every file
//! named here must exist when the configuration is loaded; the contents are
//! not checked (that happens when the TLS stack loads them).

use std::path::{Path, PathBuf};

use crate::ConfigError;
use crate::ctx::FileCtx;
use crate::values;
use crate::yaml::{Node, line_of};

const SERVER_KEYS: &[&str] = &["cert_file", "key_file"];
const CLIENT_KEYS: &[&str] = &["ca_file", "server_name"];

/// TLS for a listener (`tls: { cert_file, key_file }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate chain presented to clients (`cert_file`).
    pub cert_file: PathBuf,
    /// PEM private key of the certificate (`key_file`).
    pub key_file: PathBuf,
}

/// TLS for a client connection (`tls: { ca_file, server_name }`).
///
/// Present (even with both fields `None`) means "connect with TLS";
/// `ca_file: None` means verify against the system's root certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA certificate(s) the server's certificate must chain to
    /// (`ca_file`); `None` = the system roots.
    pub ca_file: Option<PathBuf>,
    /// Name expected in the server's certificate (`server_name`); `None` =
    /// the host of the endpoint.
    pub server_name: Option<String>,
}

/// Parses a server `tls:` section at `key` (whose name is on `key_line`):
/// both files or neither (`None`). Each file must exist.
pub(crate) fn server_tls(
    f: &FileCtx,
    node: &Node,
    key: &str,
    key_line: Option<u64>,
) -> Result<Option<ServerTls>, ConfigError> {
    let mut cert = None;
    let mut private_key = None;
    for (k, v) in f.mapping(node, key, SERVER_KEYS)? {
        let full = f.join(key, k);
        match k.value.as_str() {
            "cert_file" => cert = Some(existing_file(f, v, &full)?),
            "key_file" => private_key = Some(existing_file(f, v, &full)?),
            _ => return Err(f.unknown(k, key, SERVER_KEYS, None)),
        }
    }
    match (cert, private_key) {
        (Some(cert_file), Some(key_file)) => Ok(Some(ServerTls {
            cert_file,
            key_file,
        })),
        (None, None) => Ok(None),
        (cert, _) => {
            let missing = if cert.is_some() {
                "key_file"
            } else {
                "cert_file"
            };
            let msg = format!(
                "`{key}.{missing}` is missing — set both `cert_file` and `key_file` to serve \
                 TLS, or remove the `tls` section to serve plain text"
            );
            Err(f.invalid_at(key, key_line.or_else(|| line_of(node)), msg))
        }
    }
}

/// Parses a client `tls:` section at `key` (an empty section means TLS with
/// the system roots). `ca_file` must exist.
pub(crate) fn client_tls(f: &FileCtx, node: &Node, key: &str) -> Result<ClientTls, ConfigError> {
    let mut tls = ClientTls::default();
    for (k, v) in f.mapping(node, key, CLIENT_KEYS)? {
        let full = f.join(key, k);
        match k.value.as_str() {
            "ca_file" => tls.ca_file = Some(existing_file(f, v, &full)?),
            "server_name" => {
                tls.server_name = Some(f.parse(v, &full, values::check_server_name)?)
            }
            _ => return Err(f.unknown(k, key, CLIENT_KEYS, None)),
        }
    }
    Ok(tls)
}

/// A path value that must name an existing file.
pub(crate) fn existing_file(f: &FileCtx, node: &Node, key: &str) -> Result<PathBuf, ConfigError> {
    let path = f.path_value(node, key)?;
    check_file(&path).map_err(|msg| f.invalid(key, node, msg))?;
    Ok(path)
}

/// Checks that `path` is an existing regular file (or a link to one).
pub(crate) fn check_file(path: &Path) -> Result<(), String> {
    let problem = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(_) => "is not a regular file".to_owned(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        Err(err) => format!("cannot be accessed: {err}"),
    };
    Err(format!(
        "file {} {problem}{} — check the path and its permissions",
        path.display(),
        relative_note(path)
    ))
}

/// " (relative paths are resolved against the working directory /x)" for
/// relative paths, else nothing.
pub(crate) fn relative_note(path: &Path) -> String {
    if path.is_absolute() {
        return String::new();
    }
    match std::env::current_dir() {
        Ok(cwd) => format!(
            " (relative paths are resolved against the working directory {})",
            cwd.display()
        ),
        Err(_) => " (relative paths are resolved against the working directory)".to_owned(),
    }
}
