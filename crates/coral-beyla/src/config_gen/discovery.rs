//! `discovery.instrument` and `discovery.exclude_instrument`: which
//! processes Beyla instruments, and the processes of Coral and Beyla it
//! must leave alone.

use std::collections::BTreeSet;

use coral_config::{BeylaService, PortSet};

use super::schema::Selector;
use super::{ALL_PORTS, BEYLA_EXE_GLOB, CORAL_EXE_GLOB, GenContext, GenError};

/// `discovery.instrument` from the configured services (all listening
/// processes when there are none).
pub(super) fn instrument(
    services: &[BeylaService],
    excluded: Option<&PortSet>,
) -> Result<Vec<Selector>, GenError> {
    if services.is_empty() {
        return Ok(vec![Selector {
            open_ports: Some(ALL_PORTS.to_owned()),
            ..Selector::default()
        }]);
    }
    services
        .iter()
        .enumerate()
        .map(|(index, s)| {
            if let (Some(ports), Some(excluded)) = (&s.open_ports, excluded) {
                let all_excluded = ports
                    .ranges()
                    .iter()
                    .all(|&(a, b)| (a..=b).all(|p| excluded.contains(p)));
                if all_excluded {
                    let ports = ports.to_string();
                    return Err(GenError::OnlyCoralPorts { index, ports });
                }
            }
            Ok(Selector {
                exe_path: s.exe_path.clone(),
                k8s_namespace: s.k8s_namespace.clone(),
                k8s_pod_labels: s.k8s_pod_labels.clone(),
                k8s_pod_name: s.k8s_pod_name.clone(),
                name: s.name.clone(),
                open_ports: s.open_ports.as_ref().map(PortSet::to_string),
            })
        })
        .collect()
}

/// `discovery.exclude_instrument`: the given executables (sorted), Coral,
/// Beyla, and Coral's ports.
pub(super) fn exclusions(ctx: &GenContext, ports: Option<&PortSet>) -> Vec<Selector> {
    let exe = |glob: String| Selector {
        exe_path: Some(glob),
        ..Selector::default()
    };
    let paths: BTreeSet<String> = ctx
        .exclude_exe_paths
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| escape_glob(p))
        .collect();
    let mut out: Vec<Selector> = paths.into_iter().map(exe).collect();
    out.push(exe(BEYLA_EXE_GLOB.to_owned()));
    out.push(exe(CORAL_EXE_GLOB.to_owned()));
    if let Some(ports) = ports {
        out.push(Selector {
            open_ports: Some(ports.to_string()),
            ..Selector::default()
        });
    }
    out
}

/// Escapes the characters that have a meaning in Beyla's globs.
fn escape_glob(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_paths_are_escaped() {
        assert_eq!(escape_glob("/opt/a[1]/coral*"), "/opt/a\\[1\\]/coral\\*");
        assert_eq!(escape_glob("/usr/bin/coral"), "/usr/bin/coral");
    }
}
