//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use coral_config::{AgentConfig, AgentOverrides, ColonyConfig, ColonyOverrides, ConfigError};

/// An environment map from pairs.
pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The minimal environment: just `HOME`, so the data directory can be derived.
pub fn home_env() -> HashMap<String, String> {
    env(&[("HOME", "/home/test")])
}

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("tests/fixtures")
        .join(name)
}

/// Loads YAML text (origin `agent.yaml`) with `HOME` set and no flags.
pub fn load_str(yaml: &str) -> Result<AgentConfig, ConfigError> {
    AgentConfig::from_yaml_str(
        yaml,
        Path::new("agent.yaml"),
        &home_env(),
        &AgentOverrides::default(),
    )
}

/// Like [`load_str`] but expects an error and returns its message.
pub fn error_of(yaml: &str) -> String {
    match load_str(yaml) {
        Ok(cfg) => panic!("expected an error for:\n{yaml}\ngot {cfg:?}"),
        Err(err) => err.to_string(),
    }
}

/// Loads colony YAML text (origin `colony.yaml`) with `HOME` set and no flags.
pub fn load_colony_str(yaml: &str) -> Result<ColonyConfig, ConfigError> {
    ColonyConfig::from_yaml_str(
        yaml,
        Path::new("colony.yaml"),
        &home_env(),
        &ColonyOverrides::default(),
    )
}

/// Like [`load_colony_str`] but expects an error.
pub fn colony_err(yaml: &str) -> ConfigError {
    match load_colony_str(yaml) {
        Ok(cfg) => panic!("expected an error for:\n{yaml}\ngot {cfg:?}"),
        Err(err) => err,
    }
}

/// Like [`load_str`] but expects an error (the error itself, not its message).
pub fn agent_err(yaml: &str) -> ConfigError {
    match load_str(yaml) {
        Ok(cfg) => panic!("expected an error for:\n{yaml}\ngot {cfg:?}"),
        Err(err) => err,
    }
}

/// Asserts that `haystack` contains every needle.
#[track_caller]
pub fn assert_contains_all(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "expected {needle:?} in message:\n{haystack}"
        );
    }
}
