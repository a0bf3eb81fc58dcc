#!/usr/bin/env python3
"""Validate every file under deploy/.

    python3 -m venv /tmp/deploy-venv
    /tmp/deploy-venv/bin/pip install -r scripts/validate-deploy-requirements.txt
    /tmp/deploy-venv/bin/python scripts/validate-deploy.py             # the checks
    /tmp/deploy-venv/bin/python scripts/validate-deploy.py --self-test # and proof that they bite

Checks, by file:

- every file under deploy/ is covered by a check below (a new kind of file
  fails until a check is added for it);
- every YAML file parses, with duplicate keys refused;
- deploy/kubernetes: each resource against the Kubernetes JSON schemas of
  every version from --k8s-versions (kubernetes-validate, strict: unknown
  fields fail); the kustomization lists every manifest, every listed file
  exists, generated files are git-ignored; `kubectl kustomize` (or
  `kustomize build`) renders it and the result passes the same schemas;
  references resolve (Services select pods and their ports, Secrets,
  ConfigMaps, ServiceAccounts, ClusterRoles, the StatefulSet's headless
  Service); Coral's wiring holds (CORAL_* variables and flags are
  documented ones, agents name the colony's Service and port, every port a
  Service, probe or the colony reaches is bound off loopback, pods with
  prometheus.io/scrape annotations name an admin listener bound off loopback
  and a metrics path it serves, the Beyla agent has hostPID, root and the
  eBPF capabilities, a stable id and no surge); embedded Coral configs use
  documented keys only;
- deploy/systemd: `systemd-analyze verify` on a copy whose ExecStart points
  at a stub (any warning about the unit fails), documented flags and
  variables, the agent's ambient capabilities include what Beyla needs and
  fit the bounding set, every --config file has its example next to the
  unit; the example configs use documented keys only (the key lists are read
  from crates/coral-config/src/lib.rs);
- deploy/compose: `docker compose config -q` where the Compose plugin runs,
  and always the compose-spec JSON schema (check-jsonschema's vendored copy);
  services, volumes and depends_on resolve; the agent is reachable by the
  colony under the name it registers, OTLP senders and the agent name ports
  that are bound off loopback;
- deploy/otel-collector: receivers/processors/exporters/pipelines are
  well-formed, every component a pipeline names is defined, an OTLP gRPC
  exporter sends to Coral on port 4317 next to at least one other exporter;
- deploy/docker: stages resolve (COPY --from), the builder is rust:*-bookworm
  and the runtime debian:bookworm-slim, the entrypoint is the copied coral
  binary, cargo builds --locked; the .dockerignore keeps target/ out;
- deploy/prometheus: the Prometheus config passes `promtool check config`
  (on a copy, with its rule files next to it), loads every rules file next
  to it, and scrapes the agent's /metrics (:9002) and the colony's /metrics
  and /metrics/red (:9003); rules files pass `promtool check rules`, every
  alert has a severity, a summary and a description; the *.test.yml files
  pass `promtool test rules` and show every alert firing and not firing;
- deploy/grafana: each dashboard parses (duplicate keys refused), has a
  title, uid, schemaVersion and panels with unique ids, a gridPos in the
  24-column grid without overlaps, a title and a description; every query
  has an expr, uses the Prometheus `datasource` template variable and only
  defined variables, and parses as PromQL (`promtool check rules` on the
  queries with Grafana's variables substituted);
- metrics: every `coral_…` name in rule expressions, test series, the
  Prometheus config and dashboard queries (template variables' included) is
  a metric Coral exports (EXPORTED_METRICS, or --exported-metrics FILE), with
  the labels and label values it has; docs/metrics.md documents each.

Exit status 0 when every check passed, 1 when one failed (each failure names
the file and the problem), 2 on a usage error. A missing external tool
(systemd-analyze, kubectl/kustomize, promtool, the docker compose plugin) is
a skip with a message; with --require-tools a missing systemd-analyze,
kubectl/kustomize or promtool fails (the Compose plugin stays optional: the
schema check runs without it).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parent.parent

try:
    import yaml
except ImportError:  # pragma: no cover - reported at start
    yaml = None


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


class Report:
    def __init__(self, root: Path, quiet: bool = False):
        self.root = root
        self.quiet = quiet
        self.passed = 0
        self.failed: list[str] = []
        self.skipped: list[str] = []

    def name(self, path: Path | str) -> str:
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(p)

    def ok(self, path: Path | str, what: str) -> None:
        self.passed += 1
        if not self.quiet:
            print(f"ok    {self.name(path)}: {what}")

    def fail(self, path: Path | str, problem: str) -> None:
        line = f"FAIL  {self.name(path)}: {problem}"
        self.failed.append(line)
        print(line)

    def skip(self, path: Path | str, why: str) -> None:
        line = f"SKIP  {self.name(path)}: {why}"
        self.skipped.append(line)
        print(line)

    def check(self, path: Path | str, what: str, problems: list[str]) -> bool:
        """One check: ok when `problems` is empty, else one FAIL per problem."""
        if problems:
            for p in problems:
                self.fail(path, p)
            return False
        self.ok(path, what)
        return True


# --------------------------------------------------------------------------
# YAML with duplicate keys refused
# --------------------------------------------------------------------------


def _strict_loader():
    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping
    )
    return StrictLoader


def load_yaml_text(text: str) -> list[Any]:
    """All documents of a YAML stream; raises yaml.YAMLError."""
    return [d for d in yaml.load_all(text, Loader=_strict_loader())]


def load_yaml(path: Path, rep: Report) -> list[Any] | None:
    try:
        docs = load_yaml_text(path.read_text())
    except yaml.YAMLError as e:
        rep.fail(path, f"does not parse as YAML: {' '.join(str(e).split())}")
        return None
    except OSError as e:
        rep.fail(path, f"cannot be read: {e}")
        return None
    docs = [d for d in docs if d is not None]
    if not docs:
        rep.fail(path, "holds no YAML document")
        return None
    rep.ok(path, "parses as YAML (no duplicate keys)")
    return docs


# --------------------------------------------------------------------------
# What Coral documents: flags, environment variables, config keys
# --------------------------------------------------------------------------


@dataclass
class CoralSpec:
    """Coral's documented interface, read from the repository's docs and
    sources, so that the deploy files cannot drift from it."""

    agent_flags: set[str]
    colony_flags: set[str]
    agent_env: set[str]
    colony_env: set[str]
    agent_keys: Any  # the documented agent YAML (agent:, beyla:)
    colony_keys: Any  # the documented colony YAML (colony:, storage:)
    modes: tuple[str, ...] = ("agent", "otel-collector", "forwarder")
    sources: list[str] = field(default_factory=list)


# Keys whose values are free-form maps (label -> glob, attribute -> value).
FREE_FORM_KEYS = {
    "beyla.attributes",
    "beyla.discovery.services[].k8s_pod_label",
    "beyla.discovery.services[].k8s_pod_labels",
}


def _flags_of(cli_md: str, command: str) -> set[str]:
    for line in cli_md.splitlines():
        if line.startswith(f"| `coral {command} "):
            cell = re.split(r"(?<!\\)\|", line)[1]  # cells end at unescaped pipes
            return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b", cell))
    return set()


def _doc_yaml_blocks(lib_rs: str) -> list[Any]:
    lines = []
    for line in lib_rs.splitlines():
        if line.startswith("//!"):
            rest = line[3:]
            lines.append(rest[1:] if rest.startswith(" ") else rest)
    text = "\n".join(lines)
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def read_spec(repo: Path) -> CoralSpec:
    sources = []
    cli_md = (repo / "docs/cli.md").read_text()
    sources.append("docs/cli.md")
    agent_flags = _flags_of(cli_md, "agent serve")
    colony_flags = _flags_of(cli_md, "colony serve")
    if not agent_flags or not colony_flags:
        raise RuntimeError("docs/cli.md has no `coral agent serve` / `coral colony serve` row")

    readme = (repo / "README.md").read_text()
    sources.append("README.md")
    agent_env = set(re.findall(r"^\| `(CORAL_[A-Z_]+)`", readme, re.M))
    beyla_md = (repo / "docs/beyla.md").read_text()
    sources.append("docs/beyla.md")
    agent_env |= {v for v in ("CORAL_BEYLA_ENABLED", "BEYLA_PATH") if v in beyla_md}
    colony_md = (repo / "docs/colony.md").read_text()
    sources.append("docs/colony.md")
    m = re.search(r"^Environment:(.*?)(?:\n\n)", colony_md, re.M | re.S)
    colony_env = set(re.findall(r"`(CORAL_[A-Z_]+)`", m.group(1))) if m else set()
    if not agent_env or not colony_env:
        raise RuntimeError("cannot read the agent (README) or colony (docs/colony.md) variables")
    # The parser's own tables (coral-config's env.rs: "Agent:" and "Colony:"),
    # which document each variable next to the key it overrides.
    env_rs = repo / "crates/coral-config/src/env.rs"
    if env_rs.exists():
        sources.append("crates/coral-config/src/env.rs")
        doc = "\n".join(l[3:] for l in env_rs.read_text().splitlines() if l.startswith("//!"))
        tables = re.split(r"^ ?(Agent|Colony):\s*$", doc, flags=re.M)
        for role, table in zip(tables[1::2], tables[2::2]):
            names = set(re.findall(r"^ ?\| `(CORAL_[A-Z_]+)`", table, re.M))
            (agent_env if role == "Agent" else colony_env).update(names)

    lib_rs = (repo / "crates/coral-config/src/lib.rs").read_text()
    sources.append("crates/coral-config/src/lib.rs")
    blocks = _doc_yaml_blocks(lib_rs)
    agent_keys = next((b for b in blocks if isinstance(b, dict) and "agent" in b), None)
    colony_keys = next((b for b in blocks if isinstance(b, dict) and "colony" in b), None)
    if agent_keys is None or colony_keys is None:
        raise RuntimeError("crates/coral-config/src/lib.rs documents no agent/colony YAML schema")
    return CoralSpec(agent_flags, colony_flags, agent_env, colony_env, agent_keys, colony_keys,
                     sources=sources)


def config_key_problems(doc: Any, schema: Any, path: str = "") -> list[str]:
    """Keys of `doc` that the documented `schema` does not have."""
    problems = []
    if path in FREE_FORM_KEYS:
        return problems
    if isinstance(schema, dict) and isinstance(doc, dict):
        for key, value in doc.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in schema:
                known = ", ".join(sorted(map(str, schema)))
                problems.append(f"unknown key `{where}` (documented: {known})")
                continue
            problems += config_key_problems(value, schema[key], where)
    elif isinstance(schema, list) and isinstance(doc, list):
        merged: dict = {}
        for item in schema:
            if isinstance(item, dict):
                merged.update(item)
        if merged:
            for item in doc:
                if isinstance(item, dict):
                    problems += config_key_problems(item, merged, f"{path}[]")
    return problems


def coral_config_problems(doc: Any, spec: CoralSpec) -> tuple[str, list[str]]:
    """(role, problems) of one Coral config document."""
    if not isinstance(doc, dict):
        return "?", ["is not a mapping"]
    keys = set(doc)
    if keys & {"agent", "beyla"} and not keys & {"colony", "storage"}:
        return "agent", config_key_problems(doc, spec.agent_keys)
    if keys & {"colony", "storage"} and not keys & {"agent", "beyla"}:
        return "colony", config_key_problems(doc, spec.colony_keys)
    return "?", [f"top-level keys {sorted(keys)} are neither an agent config "
                 "(agent:, beyla:) nor a colony config (colony:, storage:)"]


# --------------------------------------------------------------------------
# A Coral process as described by a deploy file
# --------------------------------------------------------------------------

AGENT_LISTENERS = {
    # name: (flag, env, config path, default)
    "otlp-grpc": ("--otlp-grpc-endpoint", "CORAL_OTLP_GRPC_ENDPOINT", ("agent", "telemetry", "endpoint"), "127.0.0.1:4317"),
    "otlp-http": ("--otlp-http-endpoint", "CORAL_OTLP_HTTP_ENDPOINT", ("agent", "telemetry", "http_endpoint"), "127.0.0.1:4318"),
    "api": ("--api-endpoint", "CORAL_AGENT_API_ENDPOINT", ("agent", "api", "endpoint"), "127.0.0.1:9001"),
    "admin": ("--admin-endpoint", "CORAL_ADMIN_ENDPOINT", ("agent", "admin", "endpoint"), "127.0.0.1:9002"),
}
COLONY_LISTENERS = {
    "api": ("--api-endpoint", "CORAL_COLONY_API_ENDPOINT", ("colony", "api", "endpoint"), "127.0.0.1:9000"),
    "admin": ("--admin-endpoint", "CORAL_COLONY_ADMIN_ENDPOINT", ("colony", "admin", "endpoint"), "127.0.0.1:9003"),
}
# Where each admin listener serves Prometheus metrics (besides /healthz, and
# the agent's /status; the colony's /metrics/red answers 404 unless
# colony.admin.red_metrics is on).
METRICS_PATHS = {"agent": ("/metrics",), "colony": ("/metrics", "/metrics/red")}
LOOPBACK = ("127.", "localhost", "::1")


@dataclass
class CoralProcess:
    role: str  # agent | colony
    args: list[str]  # after `agent serve` / `colony serve`
    env: dict[str, str]  # resolved values ("<pod-ip>" etc. for references)
    config: dict | None  # the config file, when it could be found
    flags: dict[str, str]

    @property
    def mode(self) -> str:
        return (self.flags.get("--mode") or self.env.get("CORAL_MODE")
                or _dig(self.config, ("agent", "mode")) or "agent")

    def setting(self, flag: str, env: str, path: tuple, default: Any = None) -> Any:
        if flag in self.flags:
            return self.flags[flag]
        if env in self.env and self.env[env] != "":
            return self.env[env]
        value = _dig(self.config, path)
        return default if value is None else value

    def listeners(self) -> dict[str, tuple[str, int]]:
        table = AGENT_LISTENERS if self.role == "agent" else COLONY_LISTENERS
        out = {}
        for name, (flag, env, path, default) in table.items():
            if self.role == "agent" and name.startswith("otlp"):
                enabled = self.setting("", "CORAL_TELEMETRY_ENABLED", ("agent", "telemetry", "enabled"), True)
                if str(enabled).lower() in ("false", "0"):
                    continue
            value = str(self.setting(flag, env, path, default))
            host, port = split_host_port(value)
            if port is not None:
                out[name] = (host, port)
        return out

    def colony_endpoint(self) -> str | None:
        v = self.setting("--colony-endpoint", "CORAL_COLONY_ENDPOINT", ("agent", "colony", "endpoint"))
        if v is None:
            v = self.flags.get("--colony")
        return v

    def token_set(self) -> bool:
        return bool(self.flags.get("--token") or self.env.get("CORAL_TOKEN")
                    or _dig(self.config, ("agent", "colony", "token"))
                    or _dig(self.config, ("agent", "colony", "token_file"))
                    or _dig(self.config, ("colony", "auth", "token"))
                    or _dig(self.config, ("colony", "auth", "token_file")))


def _dig(d: Any, path: tuple) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def split_host_port(value: str) -> tuple[str, int | None]:
    v = re.sub(r"^[a-z]+://", "", value.strip()).rstrip("/")
    m = re.match(r"^\[(.*)\]:(\d+)$", v) or re.match(r"^([^:]*):(\d+)$", v)
    if not m:
        return v, None
    return m.group(1), int(m.group(2))


def is_loopback(host: str) -> bool:
    return host.startswith(LOOPBACK)


def parse_coral_command(argv: list[str], spec: CoralSpec) -> tuple[str | None, list[str], dict[str, str], list[str]]:
    """(role, rest, flags, problems) of a `coral …` argument list (without
    the program name). Only `agent serve` and `colony serve` are roles."""
    problems: list[str] = []
    if len(argv) < 2 or argv[1] != "serve" or argv[0] not in ("agent", "colony"):
        return None, argv, {}, [f"`coral {' '.join(argv[:2])}` is not `agent serve` or `colony serve`"]
    role = argv[0]
    known = spec.agent_flags if role == "agent" else spec.colony_flags
    flags: dict[str, str] = {}
    rest = argv[2:]
    i = 0
    while i < len(rest):
        a = rest[i]
        if not a.startswith("-"):
            problems.append(f"unexpected argument {a!r} to `coral {role} serve`")
            i += 1
            continue
        name, eq, value = a.partition("=")
        if name not in known:
            problems.append(f"`coral {role} serve` has no flag {name} (docs/cli.md: {', '.join(sorted(known))})")
            i += 1
            continue
        if not eq:
            if i + 1 >= len(rest):
                problems.append(f"flag {name} has no value")
                break
            value = rest[i + 1]
            i += 1
        flags[{"-c": "--config"}.get(name, name)] = value
        i += 1
    if role == "agent" and "--mode" in flags and flags["--mode"] not in spec.modes:
        problems.append(f"--mode {flags['--mode']!r} is not one of {', '.join(spec.modes)}")
    return role, rest, flags, problems


def env_name_problems(role: str, names: Iterable[str], spec: CoralSpec) -> list[str]:
    known = spec.agent_env if role == "agent" else spec.colony_env
    where = ("README, docs/beyla.md" if role == "agent" else "docs/colony.md") + ", coral-config's env.rs"
    problems = []
    for n in names:
        if (n.startswith("CORAL_") or n.startswith("BEYLA_")) and n not in known:
            problems.append(
                f"{n} is not a documented {role} variable ({where}: {', '.join(sorted(known))})")
    return problems


def process_problems(proc: CoralProcess, require_token: bool = True) -> list[str]:
    """Problems any Coral process description can have on its own.
    `require_token`: an API reachable off loopback must require a token
    (production files; the local compose demo goes without)."""
    problems = []
    api = proc.listeners().get("api")
    if require_token and api and not is_loopback(api[0]) and not proc.token_set():
        what = "agent API" if proc.role == "agent" else "colony API"
        problems.append(f"the {what} listens on {api[0]}:{api[1]} without a token (CORAL_TOKEN or a "
                        f"token_file): anyone who reaches it can read and, at the colony, write data")
    if proc.role == "agent":
        if proc.mode == "agent" and proc.colony_endpoint():
            api = proc.listeners().get("api")
            advertised = _dig(proc.config, ("agent", "colony", "advertise_endpoint"))
            if api and is_loopback(api[0]) and not advertised:
                problems.append(
                    f"the agent registers with a colony that pulls it, but its API is bound to "
                    f"{api[0]}:{api[1]} (loopback), which is what it advertises: bind the pod/host "
                    f"address or set agent.colony.advertise_endpoint")
    return problems


# --------------------------------------------------------------------------
# deploy/systemd
# --------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            continue
        k, _, v = line.partition("=")
        current.setdefault(k.strip(), []).append(v.strip())
    return sections


def _unit_caps(values: list[str]) -> set[str]:
    caps: set[str] = set()
    for v in values:
        if v == "":
            caps = set()
        elif v.startswith("~"):
            caps -= set(v[1:].split())
        else:
            caps |= set(v.split())
    return caps


def check_systemd(deploy: Path, spec: CoralSpec, rep: Report, require_tools: bool) -> None:
    sd = deploy / "systemd"
    analyze = shutil.which("systemd-analyze")
    verify_extra = []
    if analyze:
        helptext = subprocess.run([analyze, "verify", "--help"], capture_output=True, text=True).stdout
        if "--recursive-errors" in helptext:
            verify_extra.append("--recursive-errors=no")
        if "--man" in helptext:
            verify_extra.append("--man=no")

    for yml in sorted(sd.glob("*.yaml")):
        docs = load_yaml(yml, rep)
        if docs is None:
            continue
        for doc in docs:
            role, problems = coral_config_problems(doc, spec)
            rep.check(yml, f"Coral {role} config: every key is documented", problems)

    for unit in sorted(sd.glob("*.service")):
        text = unit.read_text()
        sections = parse_unit(text)
        svc = sections.get("Service", {})
        problems: list[str] = []
        execs = svc.get("ExecStart", [])
        if len(execs) != 1:
            problems.append(f"has {len(execs)} ExecStart= lines, expected one")
            rep.check(unit, "ExecStart", problems)
            continue
        argv = shlex.split(execs[0])
        if argv[0] != "/usr/local/bin/coral":
            problems.append(f"ExecStart runs {argv[0]}, expected /usr/local/bin/coral")
        role, _, flags, p = parse_coral_command(argv[1:], spec)
        problems += p
        env = {}
        for e in svc.get("Environment", []):
            for item in shlex.split(e):
                k, _, v = item.partition("=")
                env[k] = v
        if role:
            problems += env_name_problems(role, env, spec)
        config = None
        if "--config" in flags:
            example = sd / Path(flags["--config"]).name
            if not flags["--config"].startswith("/etc/coral/"):
                problems.append(f"--config {flags['--config']} is not under /etc/coral")
            elif not example.exists():
                problems.append(f"--config {flags['--config']} has no example {example.name} next to the unit")
            else:
                try:
                    docs = load_yaml_text(example.read_text())
                    config = docs[0] if docs else None
                except yaml.YAMLError:
                    config = None  # reported on the YAML file itself
        state = svc.get("StateDirectory", [""])[-1]
        if not state:
            problems.append("no StateDirectory=: the data directory must be created and owned by the unit")
        elif env.get("CORAL_HOME", "").rstrip("/") != f"/var/lib/{state.split()[0]}":
            problems.append(f"CORAL_HOME={env.get('CORAL_HOME')!r} is not the StateDirectory /var/lib/{state.split()[0]}")
        if role:
            proc = CoralProcess(role, argv[3:], env, config, flags)
            problems += process_problems(proc)
            beyla_on = str(proc.setting("", "CORAL_BEYLA_ENABLED", ("beyla", "enabled"), True)).lower() \
                not in ("false", "0")
            if role == "agent" and proc.mode == "agent" and beyla_on:
                ambient = _unit_caps(svc.get("AmbientCapabilities", []))
                bounding = svc.get("CapabilityBoundingSet")
                user = svc.get("User", ["root"])[-1]
                if user not in ("root", "0") and not (
                        {"CAP_BPF", "CAP_PERFMON"} <= ambient or "CAP_SYS_ADMIN" in ambient):
                    problems.append(
                        f"the agent runs as {user} without CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) in "
                        f"AmbientCapabilities=: Beyla would be disabled (docs/beyla.md)")
                if user not in ("root", "0") and "CAP_SYS_PTRACE" not in ambient:
                    problems.append("AmbientCapabilities= lacks CAP_SYS_PTRACE: Beyla would be limited "
                                    "to the agent's own user's processes")
                if bounding is not None:
                    missing = ambient - _unit_caps(bounding)
                    if missing:
                        problems.append(f"AmbientCapabilities= {sorted(missing)} are not in "
                                        f"CapabilityBoundingSet=, so they are dropped")
            elif role:
                if _unit_caps(svc.get("AmbientCapabilities", [])):
                    problems.append(f"the {role} ({proc.mode if role == 'agent' else 'colony'}) needs no "
                                    f"capabilities, but AmbientCapabilities= grants some")
        if "Restart" not in svc:
            problems.append("no Restart= policy")
        if "WantedBy" not in sections.get("Install", {}):
            problems.append("no [Install] WantedBy=: `systemctl enable` would do nothing")
        rep.check(unit, f"coral {' '.join(argv[1:3])}: flags, variables, capabilities, state directory", problems)

        # systemd-analyze verify on a copy whose ExecStart is a stub.
        if not analyze:
            msg = "systemd-analyze not found: `systemd-analyze verify` not run (install systemd)"
            (rep.fail if require_tools else rep.skip)(unit, msg)
            continue
        with tempfile.TemporaryDirectory(prefix="coral-unit-") as tmp:
            stub = Path(tmp) / "coral"
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
            copy_path = Path(tmp) / unit.name
            copy_path.write_text(re.sub(r"(?m)^(ExecStart=)/usr/local/bin/coral\b", rf"\g<1>{stub}", text))
            r = subprocess.run([analyze, "verify", *verify_extra, str(copy_path)],
                               capture_output=True, text=True, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
            out = (r.stdout + r.stderr).strip()
            about_unit = [l.replace(str(copy_path), unit.name).replace(str(stub), "/usr/local/bin/coral")
                          for l in out.splitlines() if unit.name in l or tmp in l]
            problems = []
            if r.returncode != 0:
                problems.append(f"systemd-analyze verify exited {r.returncode}: " + " | ".join(about_unit or out.splitlines()[-3:]))
            elif about_unit:
                problems.append("systemd-analyze verify: " + " | ".join(about_unit))
            rep.check(unit, "systemd-analyze verify (ExecStart pointed at a stub coral)", problems)


# --------------------------------------------------------------------------
# deploy/kubernetes
# --------------------------------------------------------------------------

WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "Pod")


def k8s_versions(arg: str) -> list[str]:
    import kubernetes_validate.utils as kvu

    available = sorted({re.sub(r"^(\d+\.\d+).*", r"\1", v) for v in kvu.all_versions()},
                       key=lambda v: tuple(map(int, v.split("."))))
    latest = available[-1]
    lo, _, hi = arg.partition("-")
    hi = hi or lo
    hi = latest if hi == "latest" else hi
    key = lambda v: tuple(map(int, v.split(".")))  # noqa: E731
    chosen = [v for v in available if key(lo) <= key(v) <= key(hi)]
    if not chosen:
        raise SystemExit(f"--k8s-versions {arg}: kubernetes-validate has schemas for {available[0]}-{latest} only")
    return chosen


def _cache_schemas() -> None:
    """kubernetes-validate reads its JSON schema files at every call; they
    never change within a run, so read each once."""
    import functools
    import kubernetes_validate.utils as kvu

    if hasattr(kvu, "schema_contents") and not hasattr(kvu.schema_contents, "cache_info"):
        kvu.schema_contents = functools.lru_cache(maxsize=None)(kvu.schema_contents)


def schema_problems(doc: dict, versions: list[str]) -> list[str]:
    import kubernetes_validate

    _cache_schemas()

    problems = []
    for v in versions:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path) or "(top)"
            problems.append(f"Kubernetes {v}: {where}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"Kubernetes {v}: {e.message}")
        except Exception as e:  # InvalidSchemaError, VersionNotSupportedError, …
            problems.append(f"Kubernetes {v}: {getattr(e, 'message', e)}")
        if len(problems) > 3:
            problems.append("… (further versions fail likewise)")
            break
    return problems


def pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") == "Pod":
        return doc.get("spec")
    return (((doc.get("spec") or {}).get("template") or {}).get("spec")) if doc.get("kind") in WORKLOADS else None


def pod_labels(doc: dict) -> dict:
    if doc.get("kind") == "Pod":
        return (doc.get("metadata") or {}).get("labels") or {}
    return (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def k8s_env(container: dict) -> tuple[dict[str, str], list[str], list[tuple[str, str]]]:
    """(env with $(VAR) expanded, names, secret refs) of a container."""
    env: dict[str, str] = {}
    names = []
    secrets = []
    for e in container.get("env") or []:
        name = e.get("name", "")
        names.append(name)
        if "value" in e:
            env[name] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                               lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
        else:
            vf = e.get("valueFrom") or {}
            if "fieldRef" in vf:
                fp = vf["fieldRef"].get("fieldPath", "")
                env[name] = {"status.podIP": "<pod-ip>", "status.hostIP": "<host-ip>"}.get(fp, f"<{fp}>")
            elif "secretKeyRef" in vf:
                env[name] = "<secret>"
                secrets.append((vf["secretKeyRef"].get("name", ""), vf["secretKeyRef"].get("key", "")))
            else:
                env[name] = "<ref>"
    return env, names, secrets


def check_kubernetes(deploy: Path, spec: CoralSpec, rep: Report, versions: list[str], require_tools: bool) -> None:
    kdir = deploy / "kubernetes"
    kust_path = kdir / "kustomization.yaml"
    kust_docs = load_yaml(kust_path, rep) if kust_path.exists() else None
    if not kust_path.exists():
        rep.fail(kdir, "no kustomization.yaml")
    kust = kust_docs[0] if kust_docs else {}
    ignored = []
    gi = kdir / ".gitignore"
    if gi.exists():
        ignored = [l.strip() for l in gi.read_text().splitlines() if l.strip() and not l.startswith("#")]

    # -- the kustomization lists every file, and every listed file exists
    problems = []
    listed = [str(r) for r in kust.get("resources") or []]
    for r in listed:
        if not (kdir / r).exists():
            problems.append(f"resources lists {r}, which does not exist")
    manifests = sorted(p for p in kdir.iterdir()
                       if p.suffix in (".yaml", ".yml") and p.name != "kustomization.yaml")
    for m in manifests:
        if m.name not in listed:
            problems.append(f"{m.name} is not listed in resources: `kubectl apply -k` would not apply it")
    generated_files: list[str] = []
    generated_names: dict[str, str] = {}
    for kind, key in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for g in kust.get(key) or []:
            generated_names[g.get("name", "")] = kind
            for f in (g.get("files") or []) + (g.get("envs") or []):
                path = str(f).split("=", 1)[-1]
                generated_files.append(path)
                if not (kdir / path).exists() and not any(fnmatch.fnmatch(path, pat) for pat in ignored):
                    problems.append(f"{key} {g.get('name')} reads {path}, which neither exists nor is git-ignored")
                elif (kdir / path).exists() and key == "secretGenerator" and not any(
                        fnmatch.fnmatch(path, pat) for pat in ignored):
                    problems.append(f"secret file {path} is not in .gitignore: it would be committed")
    ns = kust.get("namespace")
    rep.check(kust_path, "lists every manifest, and every file it lists exists", problems)

    if gi.exists():
        problems = [f".gitignore does not ignore the secret file {f}" for f in generated_files
                    if not any(fnmatch.fnmatch(f, pat) for pat in ignored)]
        rep.check(gi, "keeps generated secret files out of git", problems)

    # -- each manifest: YAML, schema for every version
    docs_by_file: dict[Path, list[dict]] = {}
    for m in manifests:
        docs = load_yaml(m, rep)
        if docs is None:
            continue
        good = []
        for i, d in enumerate(docs):
            if not isinstance(d, dict) or not d.get("kind") or not d.get("apiVersion"):
                rep.fail(m, f"document {i + 1} has no apiVersion/kind")
                continue
            name = f"{d['kind']}/{(d.get('metadata') or {}).get('name', '?')}"
            rep.check(m, f"{name} valid for Kubernetes {versions[0]}-{versions[-1]} (strict)",
                      schema_problems(d, versions))
            good.append(d)  # cross-checked below, valid or not
        docs_by_file[m] = good

    all_docs = [(f, d) for f, ds in docs_by_file.items() for d in ds]
    check_k8s_references(kust_path, all_docs, ns, generated_names, kust, spec, rep)

    # -- the rendered kustomization
    tool = shutil.which("kubectl")
    cmd_prefix = [tool, "kustomize"] if tool else None
    if not tool and shutil.which("kustomize"):
        cmd_prefix = [shutil.which("kustomize"), "build"]
    if not cmd_prefix:
        msg = "neither kubectl nor kustomize found: the kustomization was not rendered"
        (rep.fail if require_tools else rep.skip)(kust_path, msg)
        return
    if not kust_docs:
        return
    with tempfile.TemporaryDirectory(prefix="coral-kustomize-") as tmp:
        copy_dir = Path(tmp) / "kubernetes"
        shutil.copytree(kdir, copy_dir)
        for f in generated_files:
            p = copy_dir / f
            if not p.exists():
                p.write_text("validation-placeholder-token\n")
        r = subprocess.run([*cmd_prefix, str(copy_dir)], capture_output=True, text=True)
        if r.returncode != 0:
            rep.fail(kust_path, f"`{' '.join(Path(cmd_prefix[0]).name.split() + cmd_prefix[1:])}` failed: "
                                f"{' '.join(r.stderr.replace(str(copy_dir), 'deploy/kubernetes').split())}")
            return
        rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
        problems = []
        for d in rendered:
            for p in schema_problems(d, versions):
                problems.append(f"rendered {d.get('kind')}/{(d.get('metadata') or {}).get('name')}: {p}")
            md = d.get("metadata") or {}
            if ns and d.get("kind") not in ("Namespace", "ClusterRole", "ClusterRoleBinding") and md.get("namespace") != ns:
                problems.append(f"rendered {d.get('kind')}/{md.get('name')} is not in namespace {ns}")
        rep.check(kust_path, f"`{Path(cmd_prefix[0]).name} {cmd_prefix[1]}` renders {len(rendered)} resources, "
                             f"all valid for Kubernetes {versions[0]}-{versions[-1]}", problems)


def scrape_annotation_problems(d: dict, pod_procs: list[tuple[dict, CoralProcess]]) -> list[str]:
    """A pod template that asks Prometheus to scrape it (prometheus.io/scrape)
    names a Coral admin listener bound off loopback, and a metrics path it
    serves."""
    if d.get("kind") == "Pod":
        ann = (d.get("metadata") or {}).get("annotations") or {}
    else:
        ann = ((((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations")) or {}
    if str(ann.get("prometheus.io/scrape", "")).lower() != "true" or not pod_procs:
        return []
    problems = []
    port_s = str(ann.get("prometheus.io/port", ""))
    path = str(ann.get("prometheus.io/path", "/metrics"))
    if not port_s.isdigit():
        return [f"prometheus.io/scrape is set, but prometheus.io/port {port_s!r} is not a port number"]
    port = int(port_s)
    for c, proc in pod_procs:
        admin = proc.listeners().get("admin")
        if admin and admin[1] == port:
            if is_loopback(admin[0]):
                problems.append(f"prometheus.io/port {port}: the {proc.role}'s admin endpoint is bound to "
                                f"{admin[0]}:{admin[1]} (loopback): Prometheus scrapes the pod IP")
            if path not in METRICS_PATHS[proc.role]:
                problems.append(f"prometheus.io/path {path}: the {proc.role}'s admin endpoint serves metrics at "
                                f"{', '.join(METRICS_PATHS[proc.role])}")
            if port not in {cp.get("containerPort") for cp in c.get("ports") or []}:
                problems.append(f"prometheus.io/port {port} is not a containerPort of {c.get('name')}")
            return problems
    listeners = ", ".join(f"{proc.role} {n} {h}:{p}" for _, proc in pod_procs
                          for n, (h, p) in proc.listeners().items())
    return [f"prometheus.io/port {port} is no Coral admin listener of this pod ({listeners})"]


def _svc_dns(host: str, namespace: str) -> tuple[str, str] | None:
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], namespace
    if len(parts) == 2 or parts[2] == "svc":
        return parts[0], parts[1]
    return None


def check_k8s_references(kust_path: Path, all_docs: list[tuple[Path, dict]], kust_ns: str | None,
                         generated: dict[str, str], kust: dict, spec: CoralSpec, rep: Report) -> None:
    def ns_of(d):
        return (d.get("metadata") or {}).get("namespace") or kust_ns or "default"

    by_kind: dict[str, dict[tuple[str, str], tuple[Path, dict]]] = {}
    for f, d in all_docs:
        md = d.get("metadata") or {}
        by_kind.setdefault(d["kind"], {})[(md.get("name"), ns_of(d))] = (f, d)

    def defined(kind, name, ns):
        return (name, ns) in by_kind.get(kind, {}) or generated.get(name) == kind

    # Namespaces: the kustomization's and the resources' agree.
    for f, d in all_docs:
        md = d.get("metadata") or {}
        if kust_ns and md.get("namespace") and md["namespace"] != kust_ns and d["kind"] != "Namespace":
            rep.fail(f, f"{d['kind']}/{md.get('name')} says namespace {md['namespace']}, "
                        f"the kustomization sets {kust_ns}")

    # Images named in kustomization.yaml `images:` are used.
    used_images = set()
    for f, d in all_docs:
        ps = pod_spec(d) or {}
        for c in (ps.get("containers") or []) + (ps.get("initContainers") or []):
            used_images.add(str(c.get("image", "")).rsplit(":", 1)[0])
    for img in kust.get("images") or []:
        if img.get("name") not in used_images:
            rep.fail(kust_path, f"images: {img.get('name')} is used by no container")

    # Coral processes in the pods, for the wiring checks.
    coral_pods = []  # (file, doc, container, CoralProcess)
    for f, d in all_docs:
        ps = pod_spec(d)
        if ps is None:
            continue
        name = f"{d['kind']}/{(d.get('metadata') or {}).get('name')}"
        problems = []
        pod_procs: list[tuple[dict, CoralProcess]] = []
        sa = ps.get("serviceAccountName")
        if sa and not defined("ServiceAccount", sa, ns_of(d)):
            problems.append(f"serviceAccountName {sa} is not defined")
        vols = {v.get("name"): v for v in ps.get("volumes") or []}
        for v in vols.values():
            if "configMap" in v and not defined("ConfigMap", v["configMap"].get("name"), ns_of(d)):
                problems.append(f"volume {v['name']}: ConfigMap {v['configMap'].get('name')} is not defined")
            if "secret" in v and not defined("Secret", v["secret"].get("secretName"), ns_of(d)):
                problems.append(f"volume {v['name']}: Secret {v['secret'].get('secretName')} is not defined")
        claim_names = {(t.get("metadata") or {}).get("name") for t in (d.get("spec") or {}).get("volumeClaimTemplates") or []}
        for c in ps.get("containers") or []:
            for vm in c.get("volumeMounts") or []:
                if vm.get("name") not in vols and vm.get("name") not in claim_names:
                    problems.append(f"container {c.get('name')}: volumeMount {vm.get('name')} names no volume")
            env, names, secrets = k8s_env(c)
            for sname, skey in secrets:
                if not defined("Secret", sname, ns_of(d)):
                    problems.append(f"container {c.get('name')}: Secret {sname} (key {skey}) is not defined")
            args = [str(a) for a in (c.get("command") or [])[1:]] + [str(a) for a in c.get("args") or []] \
                if c.get("command") else [str(a) for a in c.get("args") or []]
            if "coral" not in str(c.get("image", "")):
                continue
            role, rest, flags, p = parse_coral_command(args, spec)
            problems += [f"container {c.get('name')}: {x}" for x in p]
            if not role:
                continue
            problems += [f"container {c.get('name')}: {x}" for x in env_name_problems(role, names, spec)]
            config = None
            if "--config" in flags:
                cfg_path = flags["--config"]
                for vm in c.get("volumeMounts") or []:
                    mp = vm.get("mountPath", "").rstrip("/")
                    if cfg_path.startswith(mp + "/"):
                        v = vols.get(vm.get("name")) or {}
                        if "configMap" in v:
                            cm = by_kind.get("ConfigMap", {}).get((v["configMap"].get("name"), ns_of(d)))
                            key = cfg_path[len(mp) + 1:]
                            data = ((cm[1].get("data") or {}) if cm else {})
                            if key not in data:
                                problems.append(f"--config {cfg_path}: ConfigMap {v['configMap'].get('name')} "
                                                f"has no key {key}")
                            else:
                                try:
                                    cdocs = load_yaml_text(data[key])
                                    config = cdocs[0] if cdocs else {}
                                    crole, cp = coral_config_problems(config, spec)
                                    if cp:
                                        rep.fail(cm[0], "; ".join(f"ConfigMap {v['configMap'].get('name')} {key}: {x}" for x in cp))
                                    else:
                                        rep.ok(cm[0], f"ConfigMap {v['configMap'].get('name')} {key}: Coral {crole} config, every key documented")
                                    if crole != role:
                                        problems.append(f"--config {cfg_path} is a {crole} config for a {role}")
                                except yaml.YAMLError as e:
                                    rep.fail(cm[0], f"ConfigMap {v['configMap'].get('name')} {key} does not parse: "
                                                    f"{' '.join(str(e).split())}")
                        break
                else:
                    problems.append(f"--config {cfg_path} is on no mounted volume")
            proc = CoralProcess(role, rest, env, config, flags)
            problems += [f"container {c.get('name')}: {x}" for x in process_problems(proc)]
            coral_pods.append((f, d, c, proc))
            pod_procs.append((c, proc))
            # Ports declared and probed must be bound off loopback.
            listeners = proc.listeners()
            by_port = {port: (lname, host) for lname, (host, port) in listeners.items()}
            named_ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            for p in c.get("ports") or []:
                port = p.get("containerPort")
                if port not in by_port:
                    problems.append(f"container {c.get('name')}: containerPort {port} is no {role} listener "
                                    f"(listeners: {', '.join(f'{n} {h}:{pt}' for n, (h, pt) in listeners.items())})")
                elif is_loopback(by_port[port][1]):
                    problems.append(f"container {c.get('name')}: containerPort {port} ({by_port[port][0]}) is bound "
                                    f"to {by_port[port][1]}: unreachable from outside the pod")
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(probe_name) or {}
                target = (probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc") or {}).get("port")
                if target is None:
                    continue
                port = named_ports.get(target, target)
                if port not in by_port or is_loopback(by_port[port][1]):
                    problems.append(f"container {c.get('name')}: {probe_name} on port {target} reaches no listener "
                                    f"bound off loopback (the kubelet probes the pod IP)")
            # The Beyla agent.
            if role == "agent" and proc.mode == "agent":
                beyla_on = str(proc.setting("", "CORAL_BEYLA_ENABLED", ("beyla", "enabled"), True)).lower() not in ("false", "0")
                if beyla_on:
                    sc = c.get("securityContext") or {}
                    caps = set((sc.get("capabilities") or {}).get("add") or [])
                    if not ps.get("hostPID"):
                        problems.append("the Beyla agent has no hostPID: it would see only its own pod's processes")
                    if not sc.get("privileged") and not ({"BPF", "PERFMON"} <= caps or "SYS_ADMIN" in caps):
                        problems.append("the Beyla agent has neither BPF+PERFMON nor SYS_ADMIN (nor privileged): "
                                        "Beyla would be disabled (docs/beyla.md)")
                    if not sc.get("privileged") and "SYS_PTRACE" not in caps:
                        problems.append("the Beyla agent lacks SYS_PTRACE: Beyla would be limited")
                    uid = sc.get("runAsUser", (ps.get("securityContext") or {}).get("runAsUser"))
                    if uid not in (0, None) and not sc.get("privileged"):
                        problems.append(f"the Beyla agent runs as uid {uid}: Kubernetes grants added capabilities "
                                        f"only to root (there are no ambient capabilities)")
                if d["kind"] == "DaemonSet":
                    if not env.get("CORAL_AGENT_ID") and "--agent-id" not in flags and not ps.get("hostNetwork"):
                        problems.append("the DaemonSet agent's id defaults to the pod name, which changes at every "
                                        "rollout: set CORAL_AGENT_ID from spec.nodeName")
                    ru = ((d.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
                    if str(ru.get("maxSurge", 0)) not in ("0", "0%"):
                        problems.append("updateStrategy.rollingUpdate.maxSurge must be 0: two agents would open "
                                        "the node's database")
        problems += scrape_annotation_problems(d, pod_procs)
        if d["kind"] == "StatefulSet":
            sn = (d.get("spec") or {}).get("serviceName")
            svc = by_kind.get("Service", {}).get((sn, ns_of(d)))
            if sn and not svc:
                problems.append(f"serviceName {sn} names no Service")
            elif svc and (svc[1].get("spec") or {}).get("clusterIP") != "None":
                problems.append(f"serviceName {sn} is not a headless Service (clusterIP: None)")
        rep.check(f, f"{name}: references resolve, Coral flags/variables/listeners consistent", problems)

    # Role bindings name defined roles and service accounts.
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for (bname, bns), (f, d) in by_kind.get(kind, {}).items():
            problems = []
            ref = d.get("roleRef") or {}
            role_ns = bns if ref.get("kind") == "Role" else ns_of(d)
            if not any(n == ref.get("name") for (n, _ns) in by_kind.get(ref.get("kind"), {})):
                problems.append(f"roleRef {ref.get('kind')}/{ref.get('name')} is not defined")
            for sub in d.get("subjects") or []:
                if sub.get("kind") == "ServiceAccount" and not defined(
                        "ServiceAccount", sub.get("name"), sub.get("namespace") or role_ns):
                    problems.append(f"subject ServiceAccount {sub.get('name')} is not defined")
            rep.check(f, f"{kind}/{bname}: role and subjects are defined", problems)

    # Services select pods, and reach bound ports.
    for (sname, sns), (f, d) in by_kind.get("Service", {}).items():
        sel = (d.get("spec") or {}).get("selector") or {}
        problems = []
        matches = [(pf, pd) for pf, pd in all_docs if pod_spec(pd) is not None and ns_of(pd) == sns
                   and sel and all(pod_labels(pd).get(k) == v for k, v in sel.items())]
        if sel and not matches:
            problems.append(f"selector {sel} matches no pod template")
        for port in (d.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for pf, pd in matches:
                cs = pod_spec(pd).get("containers") or []
                found = None
                for c in cs:
                    for cp in c.get("ports") or []:
                        if target in (cp.get("name"), cp.get("containerPort")):
                            found = (c, cp)
                if not found:
                    problems.append(f"port {port.get('name') or port.get('port')}: targetPort {target} is no "
                                    f"container port of {pd['kind']}/{pd['metadata']['name']}")
        rep.check(f, f"Service/{sname}: selects pods, target ports exist", problems)

    # Agents name the colony's Service and port, which a colony listens on.
    for f, d, c, proc in coral_pods:
        if proc.role != "agent":
            continue
        ep = proc.colony_endpoint()
        name = f"{d['kind']}/{d['metadata']['name']}"
        if not ep:
            rep.fail(f, f"{name}: the agent has no colony endpoint (CORAL_COLONY_ENDPOINT)")
            continue
        host, port = split_host_port(ep)
        target = _svc_dns(host, ns_of(d))
        problems = []
        svc = by_kind.get("Service", {}).get(target) if target else None
        if not svc:
            problems.append(f"colony endpoint {ep}: no Service {host} in this deployment")
        else:
            sport = next((p for p in (svc[1]["spec"].get("ports") or []) if p.get("port") == port), None)
            if not sport:
                problems.append(f"colony endpoint {ep}: Service {target[0]} has no port {port}")
            else:
                sel = svc[1]["spec"].get("selector") or {}
                colonies = [(pf, pd, pc, pp) for pf, pd, pc, pp in coral_pods if pp.role == "colony"
                            and all(pod_labels(pd).get(k) == v for k, v in sel.items())]
                if not colonies:
                    problems.append(f"colony endpoint {ep}: Service {target[0]} selects no `coral colony serve` pod")
                for pf, pd, pc, pp in colonies:
                    tp = sport.get("targetPort", port)
                    tp = {x.get("name"): x.get("containerPort") for x in pc.get("ports") or []}.get(tp, tp)
                    api = pp.listeners().get("api")
                    if not api or api[1] != tp:
                        problems.append(f"colony endpoint {ep}: the colony listens on {api}, the Service targets {tp}")
        rep.check(f, f"{name}: colony endpoint {ep} reaches the colony's API", problems)


# --------------------------------------------------------------------------
# deploy/compose
# --------------------------------------------------------------------------


def _compose_interpolate(value: str) -> str:
    """${VAR:-default} and ${VAR-default} -> default; ${VAR} -> ''."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", value)


def check_compose(deploy: Path, spec: CoralSpec, rep: Report, require_tools: bool) -> None:
    for path in sorted((deploy / "compose").glob("*.y*ml")):
        docs = load_yaml(path, rep)
        if docs is None:
            continue
        doc = docs[0]
        # 1. The Compose implementation itself, where it runs without a daemon.
        docker = shutil.which("docker")
        plugin = None
        if docker:
            r = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
            if r.returncode == 0:
                plugin = [docker, "compose"]
        if not plugin and shutil.which("docker-compose"):
            r = subprocess.run(["docker-compose", "version"], capture_output=True, text=True)
            if r.returncode == 0 and re.search(r"v?2\.", r.stdout):
                plugin = ["docker-compose"]
        if plugin:
            r = subprocess.run([*plugin, "-f", str(path), "config", "-q"], capture_output=True, text=True,
                               cwd=path.parent)
            rep.check(path, f"`{' '.join(Path(plugin[0]).name.split() + plugin[1:])} config -q`",
                      [] if r.returncode == 0 else [f"compose config: {' '.join(r.stderr.split())}"])
        else:
            # Not a failure even with --require-tools: the schema below is the
            # fallback where the plugin cannot run.
            rep.skip(path, "the docker compose plugin is not installed: `docker compose config -q` not run "
                           "(the compose-spec schema check below still runs)")
        # 2. The compose-spec JSON schema (vendored by check-jsonschema).
        r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                            "--output-format", "text", str(path)], capture_output=True, text=True)
        if r.returncode != 0 and "No module named" in r.stderr:
            rep.fail(path, "check-jsonschema is not installed: pip install -r scripts/validate-deploy-requirements.txt")
        else:
            out = " ".join((r.stdout + r.stderr).replace(str(path), path.name).split())
            rep.check(path, "valid against the compose-spec JSON schema", [] if r.returncode == 0 else [out])
        # 3. References and Coral's wiring.
        if not isinstance(doc, dict):
            continue
        check_compose_refs(path, doc, spec, rep)


def check_compose_refs(path: Path, doc: dict, spec: CoralSpec, rep: Report) -> None:
    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    problems = []
    procs: dict[str, CoralProcess] = {}
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else list(deps):
            if dep not in services:
                problems.append(f"service {name}: depends_on {dep}, which is not a service")
        for v in svc.get("volumes") or []:
            src = (v.split(":", 1)[0] if isinstance(v, str) else v.get("source")) or ""
            if src and not src.startswith((".", "/", "~", "$")) and src not in volumes:
                problems.append(f"service {name}: volume {src} is not declared under volumes:")
        image = _compose_interpolate(str(svc.get("image", "")))
        if "coral" in image:
            cmd = svc.get("command") or []
            argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
            role, rest, flags, p = parse_coral_command(argv, spec)
            problems += [f"service {name}: {x}" for x in p]
            env = svc.get("environment") or {}
            if isinstance(env, list):
                env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
            env = {k: _compose_interpolate(str(v)) for k, v in env.items()}
            if role:
                problems += [f"service {name}: {x}" for x in env_name_problems(role, env, spec)]
                proc = CoralProcess(role, rest, env, None, flags)
                problems += [f"service {name}: {x}" for x in process_problems(proc, require_token=False)]
                procs[name] = proc
                listeners = proc.listeners()
                by_port = {port: (ln, host) for ln, (host, port) in listeners.items()}
                for port in svc.get("ports") or []:
                    target = int(str(port).split(":")[-1].split("/")[0]) if not isinstance(port, dict) else port.get("target")
                    if target not in by_port:
                        problems.append(f"service {name}: published port {target} is no {role} listener")
                    elif is_loopback(by_port[target][1]):
                        problems.append(f"service {name}: published port {target} ({by_port[target][0]}) is bound "
                                        f"to {by_port[target][1]} inside the container: unreachable")
                # The colony pulls the agent at http://<hostname>:<api port>.
                if role == "agent" and proc.mode == "agent" and proc.colony_endpoint():
                    api = listeners.get("api")
                    if api and api[0] in ("0.0.0.0", "::"):
                        if svc.get("hostname") != name:
                            problems.append(f"service {name}: the agent advertises http://<its host name>:{api[1]} "
                                            f"to the colony; set `hostname: {name}` so that the name resolves")
    # Agents name a colony service and port; senders name an agent's OTLP port.
    for name, proc in procs.items():
        if proc.role != "agent" or not proc.colony_endpoint():
            continue
        host, port = split_host_port(proc.colony_endpoint())
        colony = procs.get(host)
        if not colony or colony.role != "colony":
            problems.append(f"service {name}: colony endpoint {proc.colony_endpoint()} names no colony service")
        else:
            api = colony.listeners().get("api")
            if not api or api[1] != port or is_loopback(api[0]):
                problems.append(f"service {name}: colony endpoint {proc.colony_endpoint()}, but the colony listens on {api}")
    for name, svc in services.items():
        cmd = (svc or {}).get("command") or []
        argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
        for a in argv:
            m = re.match(r"--otlp-endpoint=?(.*)", a)
            if m:
                value = m.group(1) or (argv[argv.index(a) + 1] if argv.index(a) + 1 < len(argv) else "")
                host, port = split_host_port(value)
                agent = procs.get(host)
                grpc = agent.listeners().get("otlp-grpc") if agent else None
                if not agent:
                    problems.append(f"service {name}: sends OTLP to {value}, which is no Coral agent service")
                elif not grpc or grpc[1] != port or is_loopback(grpc[0]):
                    problems.append(f"service {name}: sends OTLP/gRPC to {value}, but the agent's OTLP/gRPC "
                                    f"listener is {grpc}")
    rep.check(path, "services, volumes, depends_on, Coral flags/variables and wiring resolve", problems)


# --------------------------------------------------------------------------
# deploy/otel-collector
# --------------------------------------------------------------------------

CORAL_OTLP_EXPORTERS = ("otlp", "otlp_grpc")


def check_collector(deploy: Path, rep: Report) -> None:
    for path in sorted((deploy / "otel-collector").glob("*.y*ml")):
        docs = load_yaml(path, rep)
        if docs is None:
            continue
        cfg = docs[0]
        problems = []
        if not isinstance(cfg, dict):
            rep.fail(path, "is not a mapping")
            continue
        sections = {}
        for s in ("receivers", "exporters"):
            if not isinstance(cfg.get(s), dict) or not cfg[s]:
                problems.append(f"no {s}: section")
        for s in ("receivers", "processors", "exporters", "extensions", "connectors"):
            v = cfg.get(s) or {}
            if not isinstance(v, dict):
                problems.append(f"{s}: is not a mapping")
                v = {}
            sections[s] = v
            for cid in v:
                if not re.match(r"^[a-z][a-z0-9_]*(/[^/\s]+)?$", str(cid)):
                    problems.append(f"{s}: component id {cid!r} is not type[/name]")
        unknown = set(cfg) - {"receivers", "processors", "exporters", "extensions", "connectors", "service"}
        if unknown:
            problems.append(f"unknown top-level keys {sorted(unknown)}")
        pipelines = ((cfg.get("service") or {}).get("pipelines")) or {}
        if not isinstance(pipelines, dict) or not pipelines:
            problems.append("service.pipelines is empty")
            pipelines = {}
        for ext in (cfg.get("service") or {}).get("extensions") or []:
            if ext not in sections["extensions"]:
                problems.append(f"service.extensions names {ext}, which is not defined under extensions:")
        for pname, p in pipelines.items():
            if not re.match(r"^(traces|metrics|logs|profiles)(/[^/\s]+)?$", str(pname)):
                problems.append(f"pipeline {pname}: not traces|metrics|logs[/name]")
            p = p or {}
            unknown = set(p) - {"receivers", "processors", "exporters"}
            if unknown:
                problems.append(f"pipeline {pname}: unknown keys {sorted(unknown)}")
            for kind in ("receivers", "processors", "exporters"):
                names = p.get(kind) or []
                if kind != "processors" and not names:
                    problems.append(f"pipeline {pname}: no {kind}")
                for n in names:
                    if n not in sections[kind] and n not in sections["connectors"]:
                        problems.append(f"pipeline {pname}: {kind[:-1]} {n} is not defined under {kind}:")
        coral = [(cid, c or {}) for cid, c in sections["exporters"].items()
                 if str(cid).split("/")[0] in CORAL_OTLP_EXPORTERS and "coral" in str(cid)]
        if not coral:
            problems.append("no OTLP/gRPC exporter named …/coral (otlp/coral or otlp_grpc/coral)")
        for cid, c in coral:
            host, port = split_host_port(str(c.get("endpoint", "")))
            if port != 4317:
                problems.append(f"exporter {cid}: endpoint {c.get('endpoint')!r} is not Coral's OTLP/gRPC port 4317")
            tls = c.get("tls") or {}
            if not str(c.get("endpoint", "")).startswith("https://") and not tls.get("insecure") and not tls.get("ca_file"):
                problems.append(f"exporter {cid}: plaintext agent endpoint needs tls.insecure: true (or a CA)")
            fanned = [pn for pn, p in pipelines.items() if str(pn).startswith("traces")
                      and cid in ((p or {}).get("exporters") or [])]
            if not fanned:
                problems.append(f"exporter {cid} is in no traces pipeline")
            for pn in fanned:
                if len((pipelines[pn] or {}).get("exporters") or []) < 2:
                    problems.append(f"pipeline {pn}: sends only to {cid}, not fanned out next to an existing exporter")
        rep.check(path, "pipelines name defined components; Coral's exporter fans out on port 4317", problems)


# --------------------------------------------------------------------------
# deploy/docker
# --------------------------------------------------------------------------


def check_docker(deploy: Path, rep: Report) -> None:
    ddir = deploy / "docker"
    df = ddir / "Dockerfile"
    if df.exists():
        text = df.read_text()
        logical = re.sub(r"\\\n", " ", text)
        instrs = []
        for line in logical.splitlines():
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            op, _, rest = s.partition(" ")
            instrs.append((op.upper(), rest.strip()))
        problems = []
        args = {}
        stages: list[tuple[str, str]] = []  # (image, alias)
        final_entry = None
        copied: dict[str, str] = {}
        cargo_locked = False
        for op, rest in instrs:
            if op == "ARG" and not stages:
                k, _, v = rest.partition("=")
                args[k.strip()] = v.strip()
            elif op == "FROM":
                parts = rest.split()
                parts = [p for p in parts if not p.startswith("--")]
                image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
                alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
                stages.append((image, alias))
            elif op == "COPY":
                m = re.search(r"--from=(\S+)", rest)
                if m and m.group(1) not in [a for _, a in stages[:-1]] and not re.match(r"^\d+$", m.group(1)) \
                        and "/" not in m.group(1) and ":" not in m.group(1):
                    problems.append(f"COPY --from={m.group(1)}: no earlier stage is called {m.group(1)}")
                dest = rest.split()[-1]
                for src in rest.split()[:-1]:
                    if not src.startswith("--"):
                        copied[dest.rstrip("/") + "/" + Path(src).name if dest.endswith("/") else dest] = src
            elif op == "ENTRYPOINT":
                final_entry = rest
            elif op == "RUN" and "cargo build" in rest:
                cargo_locked = cargo_locked or "--locked" in rest
        if not stages:
            problems.append("no FROM")
        else:
            if not any(re.match(r"^rust:[\w.-]*bookworm$", img) for img, _ in stages[:-1]):
                problems.append(f"no rust:*-bookworm builder stage (stages: {[i for i, _ in stages]})")
            if stages[-1][0] != "debian:bookworm-slim":
                problems.append(f"the final stage is {stages[-1][0]}, expected debian:bookworm-slim")
        if not cargo_locked:
            problems.append("cargo build without --locked: the image would not build from Cargo.lock")
        if not final_entry or "/usr/local/bin/coral" not in final_entry:
            problems.append(f"ENTRYPOINT {final_entry!r} does not run /usr/local/bin/coral")
        elif "/usr/local/bin/coral" not in copied:
            problems.append("ENTRYPOINT runs /usr/local/bin/coral, which no COPY puts there")
        rep.check(df, "stages resolve; rust:*-bookworm builder, debian:bookworm-slim runtime, coral entrypoint",
                  problems)
    for ign in sorted(ddir.glob("*.dockerignore")):
        pats = [l.strip() for l in ign.read_text().splitlines() if l.strip() and not l.startswith("#")]
        problems = []
        if not (ddir / ign.name[: -len(".dockerignore")]).exists():
            problems.append(f"{ign.name} belongs to no Dockerfile next to it")
        for must in ("target", ".git"):
            if not any(p.strip("/") in (must, f"**/{must}") for p in pats):
                problems.append(f"does not exclude {must}/: the build context would carry it")
        for must_not in ("crates", "proto", "Cargo.toml", "Cargo.lock"):
            if any(fnmatch.fnmatch(must_not, p.strip("/")) for p in pats if not p.startswith("!")):
                problems.append(f"excludes {must_not}, which the build needs")
        rep.check(ign, "keeps target/ and .git/ out of the build context, keeps the workspace in", problems)


# --------------------------------------------------------------------------
# What Coral exports to Prometheus
# --------------------------------------------------------------------------


@dataclass
class Metric:
    """One metric family: its type (None = not known) and its labels, each
    with the values it takes (None = any); labels None = not known."""

    type: str | None
    labels: dict[str, tuple[str, ...] | None] | None = field(default_factory=dict)


AGENT_COUNTERS = (
    "spans_received", "spans_accepted", "spans_rejected", "spans_dropped", "spans_filtered",
    "spans_stored", "spans_attributes_cut", "buckets_stored", "buckets_dropped",
    "requests_rejected_invalid", "requests_rejected_too_large", "requests_throttled",
    "store_write_failures", "store_recoveries", "requests_not_stored", "requests_retried",
    "spans_retried", "connections_evicted",
    "connections_timed_out", "metric_points_received", "log_records_received",
    "rows_deleted_by_retention", "beyla_points_received", "beyla_points_skipped",
    "beyla_spans_received", "beyla_spans_sampled_out", "beyla_spans_attributes_cut",
    "beyla_requests_throttled", "beyla_rows_stored", "beyla_rows_dropped",
)
HISTOGRAM_LE = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
SPAN_KINDS = ("SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER", "UNSPECIFIED")
RED_LABELS = {"service": None, "operation": None, "span_kind": SPAN_KINDS}

# The ONE list of what Coral exports: the agent's admin endpoint (:9002
# /metrics), the colony's (:9003 /metrics) and its opt-in RED exposition
# (:9003 /metrics/red). Families as a `# TYPE` line names them (histograms
# add _bucket{le}, _sum and _count). Prometheus adds `instance` and `job` to
# every series. crates/coral-colony/tests/prometheus.rs scrapes real
# endpoints and checks these same names against what they serve (and passes
# what it scraped with --exported-metrics); docs/metrics.md documents each.
EXPORTED_METRICS: dict[str, Metric] = {
    **{f"coral_agent_{n}_total": Metric("counter") for n in AGENT_COUNTERS},
    "coral_agent_store_failing": Metric("gauge"),
    "coral_agent_db_size_bytes": Metric("gauge"),
    "coral_agent_latest_seq_id": Metric("gauge"),
    "coral_agent_uptime_seconds": Metric("gauge"),
    "coral_colony_polls_total": Metric("counter"),
    "coral_colony_poll_failures_total": Metric("counter"),
    "coral_colony_pages_stored_total": Metric("counter"),
    "coral_colony_rows_stored_total": Metric("counter", {"table": ("otel_spans", "trace_spans", "host_metrics", "beyla")}),
    "coral_colony_rows_duplicate_total": Metric("counter"),
    "coral_colony_rows_rejected_total": Metric("counter"),
    "coral_colony_gaps_total": Metric("counter"),
    "coral_colony_gap_rows_total": Metric("counter"),
    "coral_colony_store_write_failures_total": Metric("counter"),
    "coral_colony_rows_deleted_by_retention_total": Metric("counter"),
    "coral_colony_poll_duration_seconds": Metric("histogram"),
    "coral_colony_agents": Metric("gauge", {"health": ("healthy", "degraded", "unreachable", "unknown")}),
    "coral_colony_agent_lag_rows": Metric("gauge", {"agent": None}),
    "coral_colony_agent_gaps": Metric("gauge", {"agent": None}),
    "coral_colony_agent_seconds_since_seen": Metric("gauge", {"agent": None}),
    "coral_colony_db_size_bytes": Metric("gauge"),
    "coral_colony_store_up": Metric("gauge"),
    "coral_colony_uptime_seconds": Metric("gauge"),
    "coral_colony_red_series": Metric("gauge"),
    "coral_red_requests_total": Metric("counter", dict(RED_LABELS)),
    "coral_red_errors_total": Metric("counter", dict(RED_LABELS)),
    "coral_red_duration_seconds": Metric("histogram", dict(RED_LABELS)),
}
SCRAPE_LABELS = ("instance", "job")
METRIC_TYPES = ("counter", "gauge", "histogram", "summary", "untyped", "unknown", "info", "stateset", "gaugehistogram")


def load_exported_metrics(path: Path) -> dict[str, Metric]:
    """--exported-metrics: one family name a line, optionally followed by its
    type; the `# TYPE name type` lines of an exposition are read as such,
    and its other `#` lines, its samples and blank lines are skipped (so a
    scrape itself can be passed). Labels (and a type the file does not give)
    are taken from the built-in list where it has the name."""
    metrics: dict[str, Metric] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if s.startswith("# TYPE "):
            s = s[len("# TYPE "):]
        elif not s or s.startswith("#"):
            continue
        parts = s.split()
        if "{" in parts[0] or (len(parts) >= 2 and re.fullmatch(r"[-+]?(\d[\d.eE+-]*|Inf|NaN)", parts[1])):
            continue  # a sample
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", parts[0]) or len(parts) > 2 or (
                len(parts) == 2 and parts[1] not in METRIC_TYPES):
            raise ValueError(f"{path}:{n}: expected `name [type]`, got {line.strip()!r}")
        known = EXPORTED_METRICS.get(parts[0])
        mtype = parts[1] if len(parts) == 2 else (known.type if known else None)
        metrics[parts[0]] = Metric(mtype, dict(known.labels) if known and known.labels is not None else None)
    if not metrics:
        raise ValueError(f"{path}: names no metric")
    return metrics


def resolve_metric(name: str, metrics: dict[str, Metric]) -> tuple[str, Metric, str] | None:
    """(family, metric, suffix) of a series name: a family itself, or a
    histogram's (summary's) _bucket/_sum/_count."""
    if name in metrics:
        return name, metrics[name], ""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            m = metrics.get(base)
            if m is None:
                continue
            if m.type == "histogram" or (m.type == "summary" and suffix != "_bucket") or (
                    m.type is None and not base.endswith("_total")):
                return base, m, suffix
    return None


_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_PROMQL_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`)')


def _mask_strings(expr: str) -> str:
    """`expr` with the contents of string literals blanked (same length), so
    that names are looked for outside strings only."""
    return _PROMQL_STRING.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1], expr)


def promql_problems(expr: str, metrics: dict[str, Metric]) -> tuple[list[str], set[str]]:
    """(problems, label names the expression's metrics carry) of one PromQL
    expression: every `coral_…` name must be an exported metric; label
    matchers right after it must name its labels (and values it takes);
    by/without/on/ignoring clauses must name labels of its metrics."""
    problems: list[str] = []
    masked = _mask_strings(expr)
    labels: set[str] = set(SCRAPE_LABELS)
    labels_known = True
    for m in re.finditer(r"(?<![\w:$])(coral_[A-Za-z0-9_:]*)(\s*\{[^}]*\})?", masked):
        name = m.group(1)
        resolved = resolve_metric(name, metrics)
        if not resolved:
            problems.append(f"`{name}` is not a metric Coral exports")
            labels_known = False
            continue
        family, metric, suffix = resolved
        if metric.labels is None:
            labels_known = False
            continue
        allowed = dict(metric.labels)
        if suffix == "_bucket":
            allowed["le"] = HISTOGRAM_LE
        labels |= set(allowed)
        if not m.group(2):
            continue
        block = expr[m.start(2):m.end(2)]
        for lm in _PROMQL_MATCHER.finditer(block):
            label, op, value = lm.group(1), lm.group(2), lm.group(3)[1:-1]
            if label == "__name__" or label in SCRAPE_LABELS:
                continue
            if label not in allowed:
                problems.append(f"`{name}` has no label `{label}` (its labels: "
                                f"{', '.join(sorted(allowed) + list(SCRAPE_LABELS))})")
                continue
            values = allowed[label]
            if values is None or "$" in value:
                continue
            if op in ("=~", "!~"):
                if not re.fullmatch(r"[\w.+]+(\|[\w.+]+)*", value):
                    continue  # a real pattern: not checked
                wanted = value.split("|")
            else:
                wanted = [value] if value else []
            for v in wanted:
                if v not in values:
                    problems.append(f"`{name}{{{label}{op}\"{value}\"}}`: {label} is never {v!r} "
                                    f"(it is one of {', '.join(values)})")
    if labels_known:
        for clause in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", masked):
            for label in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", clause.group(2)):
                if label not in labels:
                    problems.append(f"{clause.group(1)} ({clause.group(2).strip()}): no metric of the expression "
                                    f"has a label `{label}` ({', '.join(sorted(labels))})")
    return problems, (labels if labels_known else set())


def _promtool(require_tools: bool, rep: Report, path: Path | str, what: str) -> str | None:
    tool = shutil.which("promtool")
    if not tool:
        msg = (f"promtool not found: {what} not run (Debian/Ubuntu: apt-get install prometheus; or "
               f"the Prometheus release tarball)")
        (rep.fail if require_tools else rep.skip)(path, msg)
    return tool


def _tool_output(r: subprocess.CompletedProcess, tmp: str, replace: str) -> str:
    out = (r.stdout + r.stderr).replace(tmp + "/", replace).replace(tmp, replace)
    return " | ".join(l.strip() for l in out.splitlines() if l.strip())


# --------------------------------------------------------------------------
# deploy/prometheus
# --------------------------------------------------------------------------

ALERT_SEVERITIES = ("critical", "warning", "info")
# Coral's admin ports: whose they are.
ADMIN_PORTS = {9002: "agent", 9003: "colony"}


def check_prometheus(deploy: Path, metrics: dict[str, Metric], source: str, rep: Report,
                     require_tools: bool) -> None:
    pdir = deploy / "prometheus"
    configs: list[tuple[Path, dict]] = []
    rules: list[tuple[Path, dict]] = []
    tests: list[tuple[Path, dict]] = []
    for path in sorted(pdir.glob("*.y*ml")):
        docs = load_yaml(path, rep)
        if docs is None:
            continue
        doc = docs[0]
        if len(docs) != 1 or not isinstance(doc, dict):
            rep.fail(path, "is not one YAML mapping")
        elif path.name.endswith((".test.yml", ".test.yaml")):
            tests.append((path, doc))
        elif "scrape_configs" in doc:
            configs.append((path, doc))
        elif "groups" in doc:
            rules.append((path, doc))
        else:
            rep.fail(path, "is neither a Prometheus config (scrape_configs:), a rules file (groups:) "
                           "nor a promtool test file (*.test.yml)")

    alerts_of: dict[str, list[str]] = {}
    for path, doc in rules:
        alerts_of[path.name] = check_rules_file(path, doc, metrics, source, rep, require_tools)
    for path, doc in configs:
        check_prometheus_config(path, doc, [p for p, _ in rules], metrics, source, rep, require_tools)
    for path, doc in tests:
        check_rules_tests(path, doc, alerts_of, metrics, source, rep, require_tools)
    if rules and not tests:
        rep.fail(pdir, "no promtool test file (*.test.yml) exercises the alerting rules")


def check_rules_file(path: Path, doc: dict, metrics: dict[str, Metric], source: str, rep: Report,
                     require_tools: bool) -> list[str]:
    """Checks a rules file; returns its alert names."""
    problems: list[str] = []
    names_problems: list[str] = []
    alerts: list[str] = []
    groups = doc.get("groups")
    if not isinstance(groups, list) or not groups:
        problems.append("groups: is not a non-empty list")
        groups = []
    seen_groups = set()
    n_rules = 0
    for g in groups:
        gname = (g or {}).get("name")
        if gname in seen_groups:
            problems.append(f"group {gname} is defined twice")
        seen_groups.add(gname)
        for i, r in enumerate((g or {}).get("rules") or []):
            n_rules += 1
            what = f"group {gname}, rule {r.get('alert') or r.get('record') or i + 1}"
            expr = str(r.get("expr", ""))
            if not expr.strip():
                problems.append(f"{what}: no expr")
            p, labels = promql_problems(expr, metrics)
            names_problems += [f"{what}: {x}" for x in p]
            if "alert" in r:
                alerts.append(str(r["alert"]))
                sev = (r.get("labels") or {}).get("severity")
                if sev not in ALERT_SEVERITIES:
                    problems.append(f"{what}: labels.severity is {sev!r}, expected one of {', '.join(ALERT_SEVERITIES)}")
                ann = r.get("annotations") or {}
                for key in ("summary", "description"):
                    if not str(ann.get(key, "")).strip():
                        problems.append(f"{what}: no annotations.{key}: say what is wrong and what to do")
                for key, text in ann.items():
                    for label in re.findall(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)", str(text)):
                        if labels and label not in labels:
                            problems.append(f"{what}: annotations.{key} uses $labels.{label}, which no metric of "
                                            f"the expression has")
            elif "record" not in r:
                problems.append(f"{what}: neither alert: nor record:")
    rep.check(path, f"{n_rules} rules; every alert has a severity ({'/'.join(ALERT_SEVERITIES)}), "
                    f"a summary and a description", problems)
    rep.check(path, f"rule expressions name only metrics and labels Coral exports ({source})", names_problems)
    tool = _promtool(require_tools, rep, path, "`promtool check rules`")
    if tool:
        r = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
        rep.check(path, "`promtool check rules`",
                  [] if r.returncode == 0 else [_tool_output(r, str(path.parent), "")])
    return alerts


def _scrape_targets(job: dict) -> list[str]:
    return [str(t) for sc in job.get("static_configs") or [] for t in (sc or {}).get("targets") or []]


def _string_values(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _string_values(v)
    elif isinstance(node, list):
        for v in node:
            yield from _string_values(v)
    elif isinstance(node, str):
        yield node


def check_prometheus_config(path: Path, doc: dict, rule_paths: list[Path], metrics: dict[str, Metric], source: str,
                            rep: Report, require_tools: bool) -> None:
    problems = []
    # Rule files: present next to it, and every rules file here is loaded.
    listed = [str(f) for f in doc.get("rule_files") or []]
    loaded: set[str] = set()
    for pattern in listed:
        matches = [p.name for p in path.parent.glob(pattern)] if not Path(pattern).is_absolute() else []
        if not matches:
            problems.append(f"rule_files: {pattern} matches no file next to {path.name}")
        loaded |= set(matches)
    for rp in rule_paths:
        if rp.name not in loaded:
            problems.append(f"the rules in {rp.name} are not loaded: add it to rule_files")
    # Scrape jobs: each Coral admin port is scraped at a path it serves, and
    # all three expositions are scraped.
    scraped: set[tuple[str, str]] = set()
    jobs = doc.get("scrape_configs") or []
    names = [j.get("job_name") for j in jobs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"job_name {dup} is used twice")
    for job in jobs:
        mpath = job.get("metrics_path", "/metrics")
        for target in _scrape_targets(job):
            host, port = split_host_port(target)
            role = ADMIN_PORTS.get(port)
            if role is None:
                continue
            if mpath not in METRICS_PATHS[role]:
                problems.append(f"job {job.get('job_name')}: {target} is a {role}'s admin port, which serves "
                                f"metrics at {', '.join(METRICS_PATHS[role])}, not {mpath}")
            else:
                scraped.add((role, mpath))
    for role, paths in METRICS_PATHS.items():
        for mp in paths:
            if (role, mp) not in scraped:
                port = next(p for p, r in ADMIN_PORTS.items() if r == role)
                problems.append(f"no job scrapes the {role}'s :{port}{mp}")
    rep.check(path, "rule files load; jobs scrape the agent's /metrics and the colony's /metrics and "
                    "/metrics/red at their admin ports", problems)
    names_problems = []
    for s in _string_values(doc):
        if "coral_" in s:
            names_problems += promql_problems(s, metrics)[0]
    rep.check(path, f"names only metrics Coral exports ({source})", names_problems)
    tool = _promtool(require_tools, rep, path, "`promtool check config`")
    if tool:
        with tempfile.TemporaryDirectory(prefix="coral-prometheus-") as tmp:
            copy = Path(tmp) / "prometheus"
            shutil.copytree(path.parent, copy)
            r = subprocess.run([tool, "check", "config", path.name], capture_output=True, text=True, cwd=copy)
            rep.check(path, "`promtool check config` (with its rule files)",
                      [] if r.returncode == 0 else [_tool_output(r, str(copy), "")])


def check_rules_tests(path: Path, doc: dict, alerts_of: dict[str, list[str]], metrics: dict[str, Metric],
                      source: str, rep: Report, require_tools: bool) -> None:
    problems = []
    alerts: list[str] = []
    for rf in doc.get("rule_files") or []:
        if str(rf) not in alerts_of:
            problems.append(f"rule_files: {rf} is not a rules file next to it")
        alerts += alerts_of.get(str(rf), [])
    fires: set[str] = set()
    quiet: set[str] = set()
    names_problems = []
    for t in doc.get("tests") or []:
        for s in t.get("input_series") or []:
            names_problems += [f"input series {s.get('series')}: {x}"
                               for x in promql_problems(str(s.get("series", "")), metrics)[0]]
        for e in t.get("promql_expr_test") or []:
            names_problems += [f"promql_expr_test {e.get('expr')}: {x}"
                               for x in promql_problems(str(e.get("expr", "")), metrics)[0]]
        for a in t.get("alert_rule_test") or []:
            name = a.get("alertname")
            if name not in alerts:
                problems.append(f"alert_rule_test names {name}, which no rule file it loads defines")
            (fires if a.get("exp_alerts") else quiet).add(name)
    for a in dict.fromkeys(alerts):
        if a not in fires:
            problems.append(f"no test shows {a} firing")
        if a not in quiet:
            problems.append(f"no test shows {a} not firing")
    rep.check(path, f"every alert of {', '.join(str(r) for r in doc.get('rule_files') or [])} is tested firing "
                    f"and not firing", problems)
    rep.check(path, f"input series name only metrics and labels Coral exports ({source})", names_problems)
    tool = _promtool(require_tools, rep, path, "`promtool test rules`")
    if tool:
        with tempfile.TemporaryDirectory(prefix="coral-prometheus-") as tmp:
            copy = Path(tmp) / "prometheus"
            shutil.copytree(path.parent, copy)
            r = subprocess.run([tool, "test", "rules", path.name], capture_output=True, text=True, cwd=copy)
            rep.check(path, "`promtool test rules`",
                      [] if r.returncode == 0 else [_tool_output(r, str(copy), "")[:1500]])


# --------------------------------------------------------------------------
# deploy/grafana
# --------------------------------------------------------------------------

GRID_COLUMNS = 24


def _json_no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def _grafana_vars(expr: str) -> list[str]:
    """Template variables an expression uses: $name, ${name}, ${name:format}, [[name]]."""
    return [a or b or c for a, b, c in re.findall(r"\$([a-zA-Z_]\w*)|\$\{([a-zA-Z_]\w*)(?::[^}]*)?\}|\[\[(\w+)\]\]", expr)]


def _grafana_promql(expr: str) -> str:
    """`expr` as plain PromQL: Grafana's interval variables become durations,
    other variables a value."""
    fixed = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__auto": "1m",
             "__range_s": "3600", "__range_ms": "3600000", "__interval_ms": "60000"}

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in fixed:
            return fixed[name]
        return "5m" if expr[: m.start()].rstrip().endswith("[") else "1"

    return re.sub(r"\$([a-zA-Z_]\w*)|\$\{([a-zA-Z_]\w*)(?::[^}]*)?\}|\[\[(\w+)\]\]", value, expr)


def _variable_queries(v: dict) -> list[str]:
    """A query variable's query, and its `definition` (what Grafana's editor
    shows) where that differs."""
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query", "")
    out = [str(q)] if q else []
    if v.get("definition") and str(v["definition"]) not in out:
        out.append(str(v["definition"]))
    return out


def _ds_uses(ds: Any, var: str) -> bool:
    refs = (f"${var}", f"${{{var}}}")
    if isinstance(ds, str):
        return ds in refs
    return isinstance(ds, dict) and ds.get("uid") in refs and ds.get("type", "prometheus") == "prometheus"


def check_grafana(deploy: Path, metrics: dict[str, Metric], source: str, rep: Report, require_tools: bool) -> None:
    for path in sorted((deploy / "grafana").glob("*.json")):
        try:
            dash = json.loads(path.read_text(), object_pairs_hook=_json_no_duplicates)
        except (ValueError, OSError) as e:
            rep.fail(path, f"does not parse as JSON: {e}")
            continue
        rep.ok(path, "parses as JSON (no duplicate keys)")
        problems: list[str] = []
        if not isinstance(dash, dict):
            rep.fail(path, "is not a JSON object")
            continue
        for key in ("title", "uid"):
            if not isinstance(dash.get(key), str) or not dash[key].strip():
                problems.append(f"no {key}: not a dashboard (export it with \"Export for sharing externally\" off)")
        if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
            problems.append(f"schemaVersion {dash.get('schemaVersion')!r}: expected an integer of 36 or more")
        if not isinstance(dash.get("panels"), list) or not dash["panels"]:
            problems.append("no panels")
        variables = [v for v in ((dash.get("templating") or {}).get("list") or []) if isinstance(v, dict)]
        var_names = {v.get("name") for v in variables}
        ds_vars = [v.get("name") for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"]
        if not ds_vars:
            problems.append("no template variable of type datasource with query prometheus: the dashboard "
                            "would be bound to one data source's uid")
        ds_var = ds_vars[0] if ds_vars else "datasource"
        rep.check(path, f"a Grafana dashboard (uid {dash.get('uid')}, schemaVersion {dash.get('schemaVersion')}) "
                        f"with a Prometheus data source variable ${ds_var}", problems)

        # Panels.
        problems = []
        exprs: list[tuple[str, str]] = []  # (where, expr)
        flat: list[tuple[dict, bool]] = []  # (panel, nested in a collapsed row)
        for p in dash.get("panels") or []:
            flat.append((p, False))
            for q in (p or {}).get("panels") or []:
                flat.append((q, True))
        ids: dict[Any, str] = {}
        boxes = []
        for p, nested in flat:
            if not isinstance(p, dict):
                problems.append("a panel is not an object")
                continue
            pid, title = p.get("id"), p.get("title")
            where = f"panel {pid} ({title!r})"
            if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
                problems.append(f"{where}: id must be a positive integer")
            elif pid in ids:
                problems.append(f"{where}: id {pid} is also {ids[pid]}'s: panel ids must be unique")
            else:
                ids[pid] = repr(title)
            if not isinstance(title, str) or not title.strip():
                problems.append(f"{where}: no title")
            if p.get("type") != "row" and not str(p.get("description", "")).strip():
                problems.append(f"{where}: no description (say what the panel shows and what to do)")
            gp = p.get("gridPos") or {}
            if not all(isinstance(gp.get(k), int) for k in "hwxy"):
                problems.append(f"{where}: gridPos needs integer h, w, x, y (has {gp})")
            elif gp["w"] < 1 or gp["h"] < 1 or gp["x"] < 0 or gp["y"] < 0 or gp["x"] + gp["w"] > GRID_COLUMNS:
                problems.append(f"{where}: gridPos {gp} is outside the {GRID_COLUMNS}-column grid")
            elif not nested:
                box = (gp["x"], gp["y"], gp["x"] + gp["w"], gp["y"] + gp["h"])
                for other, obox in boxes:
                    if box[0] < obox[2] and obox[0] < box[2] and box[1] < obox[3] and obox[1] < box[3]:
                        problems.append(f"{where}: gridPos overlaps {other}")
                boxes.append((where, box))
            if p.get("type") in ("row", "text"):
                continue
            if not _ds_uses(p.get("datasource"), ds_var):
                problems.append(f"{where}: datasource {p.get('datasource')!r} is not ${{{ds_var}}}")
            targets = p.get("targets") or []
            if not targets:
                problems.append(f"{where}: no targets")
            refs = [t.get("refId") for t in targets if isinstance(t, dict)]
            for dup in sorted({r for r in refs if refs.count(r) > 1}, key=str):
                problems.append(f"{where}: refId {dup} is used twice")
            for t in targets:
                if not isinstance(t, dict):
                    continue
                expr = t.get("expr")
                if not isinstance(expr, str) or not expr.strip():
                    problems.append(f"{where}, target {t.get('refId')}: no expr")
                    continue
                if not _ds_uses(t.get("datasource", p.get("datasource")), ds_var):
                    problems.append(f"{where}, target {t.get('refId')}: datasource {t.get('datasource')!r} "
                                    f"is not ${{{ds_var}}}")
                exprs.append((f"{where}, target {t.get('refId')}", expr))
        for v in variables:
            if v.get("type") == "query":
                if not _ds_uses(v.get("datasource"), ds_var):
                    problems.append(f"variable {v.get('name')}: datasource {v.get('datasource')!r} is not ${{{ds_var}}}")
                queries = _variable_queries(v)
                if not queries:
                    problems.append(f"variable {v.get('name')}: no query")
                exprs += [(f"variable {v.get('name')}", q) for q in queries]
        for where, expr in exprs:
            for name in _grafana_vars(expr):
                if not name.startswith("__") and name not in var_names:
                    problems.append(f"{where}: ${name} is no template variable ({', '.join(sorted(map(str, var_names)))})")
        rep.check(path, f"{len(flat)} panels: unique ids, gridPos, title, description; every query has an expr "
                        f"and uses ${ds_var} and defined variables", problems)

        # Metric names, and the PromQL itself.
        names_problems = []
        promql: list[tuple[str, str]] = []
        for where, expr in exprs:
            m = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*", expr, re.S)
            q = re.fullmatch(r"\s*query_result\((.*)\)\s*", expr, re.S)
            if where.startswith("variable ") and not (m or q):
                if re.match(r"\s*(label_values|label_names|metrics)\(", expr):
                    continue
            body = (m or q).group(1) if (m or q) else expr
            names_problems += [f"{where}: {x}" for x in promql_problems(body, metrics)[0]]
            promql.append((where, _grafana_promql(body)))
        rep.check(path, f"{len(exprs)} queries name only metrics and labels Coral exports ({source})", names_problems)
        tool = _promtool(require_tools, rep, path, "PromQL parse check of the queries (`promtool check rules`)")
        if tool and promql:
            rules = {"groups": [{"name": "grafana", "rules": [
                {"record": f"grafana_query_{i}", "expr": e} for i, (_, e) in enumerate(promql)]}]}
            with tempfile.TemporaryDirectory(prefix="coral-grafana-") as tmp:
                rf = Path(tmp) / "queries.yml"
                rf.write_text(yaml.safe_dump(rules, sort_keys=False))
                r = subprocess.run([tool, "check", "rules", str(rf)], capture_output=True, text=True)
                problems = []
                if r.returncode != 0:
                    out = r.stdout + r.stderr
                    for i, (where, e) in enumerate(promql):
                        for line in out.splitlines():
                            if f'"grafana_query_{i}"' in line:
                                msg = line.split(f'"grafana_query_{i}":', 1)[-1].strip()
                                problems.append(f"{where}: {msg}")
                    if not problems:
                        problems.append(_tool_output(r, tmp, ""))
                rep.check(path, f"{len(promql)} queries parse as PromQL (`promtool check rules`, Grafana variables "
                                f"substituted)", problems)


def check_metrics_doc(repo: Path, metrics: dict[str, Metric], source: str, rep: Report) -> None:
    """docs/metrics.md documents every exported metric family."""
    doc = repo / "docs/metrics.md"
    if not doc.exists():
        rep.fail(doc, "missing: it documents what Coral exports to Prometheus")
        return
    text = doc.read_text()
    missing = [n for n in metrics if not re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", text)]
    stale = sorted({n for n in re.findall(r"`(coral_[a-z0-9_]+)`", text) if not resolve_metric(n, metrics)})
    rep.check(doc, f"documents all {len(metrics)} exported metric families, and no other ({source})",
              [f"does not document {n}" for n in missing]
              + [f"documents `{n}`, which Coral does not export" for n in stale])


# --------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------

COVERED = [
    "systemd/*.service", "systemd/*.yaml",
    "kubernetes/kustomization.yaml", "kubernetes/*.yaml", "kubernetes/.gitignore",
    "compose/*.yaml", "compose/*.yml",
    "otel-collector/*.yaml", "otel-collector/*.yml",
    "docker/Dockerfile", "docker/*.dockerignore",
    "prometheus/*.yml", "prometheus/*.yaml",
    "grafana/*.json",
]


def _git_ignored(f: Path) -> bool:
    """Whether a .gitignore next to `f` ignores it (a local secret such as
    deploy/kubernetes/token is not a deploy file)."""
    gi = f.parent / ".gitignore"
    if not gi.exists():
        return False
    pats = [l.strip() for l in gi.read_text().splitlines() if l.strip() and not l.startswith("#")]
    return any(fnmatch.fnmatch(f.name, p) for p in pats)


def check_inventory(deploy: Path, rep: Report) -> None:
    problems = []
    files = sorted(p for p in deploy.rglob("*") if p.is_file() and not _git_ignored(p))
    for f in files:
        rel = f.relative_to(deploy).as_posix()
        if not any(fnmatch.fnmatch(rel, pat) and rel.count("/") == pat.count("/") for pat in COVERED):
            rep.fail(f, "no check in scripts/validate-deploy.py covers this file: add one")
            problems.append(rel)
    if not problems:
        rep.ok(deploy, f"all {len(files)} files are covered by a check")


# --------------------------------------------------------------------------
# Self-test: break each file in a copy, and see the run fail naming it
# --------------------------------------------------------------------------


def _sub(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def f(text: str) -> str:
        if old not in text:
            raise AssertionError(f"mutation target {old!r} not found")
        return text.replace(old, new, count)
    return f


MUTATIONS: list[tuple] = [
    # (file, what is broken, mutation, tool it needs or None[, extra arguments
    # of the run, from its temporary directory])
    ("systemd/coral-agent.service", "a misspelt value (systemd-analyze)", _sub("ProtectSystem=strict", "ProtectSystem=strictt"), "systemd-analyze"),
    ("systemd/coral-forwarder.service", "an unknown directive (systemd-analyze)", _sub("[Service]\n", "[Service]\nRestartSecs=5\n"), "systemd-analyze"),
    ("systemd/coral-agent.service", "CAP_PERFMON dropped from the ambient set", _sub("AmbientCapabilities=CAP_BPF CAP_PERFMON", "AmbientCapabilities=CAP_BPF"), None),
    ("systemd/coral-agent.service", "an ambient capability outside the bounding set", _sub("CapabilityBoundingSet=CAP_BPF CAP_PERFMON", "CapabilityBoundingSet=CAP_PERFMON"), None),
    ("systemd/coral-colony.service", "an undocumented flag", _sub("--config /etc/coral/colony.yaml", "--konfig /etc/coral/colony.yaml"), None),
    ("systemd/coral-colony.service", "an undocumented variable", _sub("Environment=CORAL_HOME=/var/lib/coral", "Environment=CORAL_HOME=/var/lib/coral\nEnvironment=CORAL_COLONY_POLL=5s"), None),
    ("systemd/agent.yaml", "a misspelt config key", _sub("    retention: 1h", "    retension: 1h"), None),
    ("systemd/forwarder.yaml", "a push setting that does not exist", _sub("      max_backoff: 60s", "      backoff_max: 60s"), None),
    ("systemd/colony.yaml", "a YAML syntax error", _sub('endpoint: "0.0.0.0:9000"', 'endpoint: "0.0.0.0:9000'), None),
    ("kubernetes/colony.yaml", "a string where the schema wants an integer", _sub("replicas: 1 ", 'replicas: "one" '), None),
    ("kubernetes/colony.yaml", "an unknown field (strict schema)", _sub("imagePullPolicy: IfNotPresent", "imagePullPolicyy: IfNotPresent"), None),
    ("kubernetes/colony.yaml", "a duplicate key", _sub("      serviceAccountName: coral-colony\n", "      serviceAccountName: coral-colony\n      serviceAccountName: coral-agent\n"), None),
    ("kubernetes/colony.yaml", "a colony config key the colony does not have", _sub("        max_concurrent: 32", "        max_concurent: 32"), None),
    ("kubernetes/agent-daemonset.yaml", "hostPID removed", _sub("      hostPID: true", "      hostPID: false"), None),
    ("kubernetes/agent-daemonset.yaml", "the agent API bound to loopback", _sub("value: $(POD_IP):9001", "value: 127.0.0.1:9001"), None),
    ("kubernetes/agent-daemonset.yaml", "the colony endpoint on a wrong port", _sub("value: coral-colony.coral.svc:9000", "value: coral-colony.coral.svc:9100"), None),
    ("kubernetes/agent-daemonset.yaml", "an undocumented CORAL_ variable", _sub("- name: CORAL_AGENT_ID", "- name: CORAL_AGENTID"), None),
    ("kubernetes/otel-collector.yaml", "a Service selecting no pod", _sub("app.kubernetes.io/component: otel-collector\n  # OTLP", "app.kubernetes.io/component: otel-colector\n  # OTLP"), None),
    ("kubernetes/otel-collector.yaml", "OTLP bound to loopback behind the Service", _sub("value: 0.0.0.0:4317", "value: 127.0.0.1:4317"), None),
    ("kubernetes/otel-collector.yaml", "an unknown --mode", _sub('"--mode", "otel-collector"', '"--mode", "collector"'), None),
    ("kubernetes/rbac.yaml", "a binding to a role that does not exist", _sub("  kind: ClusterRole\n  name: coral-agent-beyla\n", "  kind: ClusterRole\n  name: coral-agent-beyl\n"), None),
    ("kubernetes/kustomization.yaml", "a manifest left out", _sub("  - rbac.yaml\n", ""), None),
    ("kubernetes/kustomization.yaml", "a resource that does not exist", _sub("  - rbac.yaml\n", "  - rbac.yaml\n  - missing.yaml\n"), None),
    ("kubernetes/kustomization.yaml", "a resource listed twice (only `kubectl kustomize` sees it)", _sub("  - namespace.yaml\n", "  - namespace.yaml\n  - namespace.yaml\n"), "kubectl"),
    ("kubernetes/namespace.yaml", "a field Namespace does not have (strict schema)", _sub("metadata:\n  name: coral\n", "metadata:\n  name: coral\n  namespaces: coral\n"), None),
    ("kubernetes/.gitignore", "the token no longer ignored", _sub("\ntoken\n", "\n"), None),
    ("compose/docker-compose.yaml", "depends_on an unknown service", _sub("    depends_on:\n      - colony", "    depends_on:\n      - colonyy"), None),
    ("compose/docker-compose.yaml", "a value the compose spec refuses", _sub("    restart: unless-stopped\n    stop_grace_period: 60s", "    restart: [unless-stopped]\n    stop_grace_period: 60s"), None),
    ("compose/docker-compose.yaml", "the agent's hostname removed", _sub("    hostname: agent\n", ""), None),
    ("compose/docker-compose.yaml", "OTLP sent to a port the agent does not serve", _sub("--otlp-endpoint=agent:4317", "--otlp-endpoint=agent:4319"), None),
    ("compose/docker-compose.yaml", "an undocumented CORAL_ variable", _sub("CORAL_OTLP_GRPC_ENDPOINT: 0.0.0.0:4317", "CORAL_OTLP_GRPC_ENDPOIN: 0.0.0.0:4317"), None),
    ("otel-collector/coral-fanout.yaml", "a pipeline naming an undefined exporter", _sub("exporters: [otlp/existing, otlp/coral]", "exporters: [otlp/existing, otlp/coarl]"), None),
    ("otel-collector/coral-fanout.yaml", "Coral's exporter on the HTTP port", _sub("endpoint: coral-otel.coral.svc:4317", "endpoint: coral-otel.coral.svc:4318"), None),
    ("otel-collector/coral-fanout.yaml", "no fan-out (Coral only)", _sub("exporters: [otlp/existing, otlp/coral]", "exporters: [otlp/coral]"), None),
    ("docker/Dockerfile", "COPY --from a stage that does not exist", _sub("COPY --from=builder", "COPY --from=biulder"), None),
    ("docker/Dockerfile", "another runtime base image", _sub("ARG RUNTIME_IMAGE=debian:bookworm-slim", "ARG RUNTIME_IMAGE=alpine:3"), None),
    ("docker/Dockerfile.dockerignore", "target/ sent to the build", _sub("\ntarget\n", "\n"), None),
    ("prometheus/README.txt", "a file no check covers", lambda _t: "notes\n", None),
    # the colony's admin endpoint
    ("kubernetes/colony.yaml", "the colony's admin port bound to loopback", _sub("value: 0.0.0.0:9003", "value: 127.0.0.1:9003"), None),
    ("kubernetes/colony.yaml", "scrape annotations naming a port the colony does not serve metrics on", _sub('prometheus.io/port: "9003"', 'prometheus.io/port: "9000"'), None),
    ("kubernetes/agent-daemonset.yaml", "scrape annotations with a path the agent does not serve", _sub("prometheus.io/path: /metrics", "prometheus.io/path: /metrics/red"), None),
    ("kubernetes/colony.yaml", "an undocumented colony variable", _sub("- name: CORAL_RED_METRICS", "- name: CORAL_COLONY_RED_METRICS"), None),
    ("compose/docker-compose.yaml", "the colony's admin port published but bound to loopback", _sub("CORAL_COLONY_ADMIN_ENDPOINT: 0.0.0.0:9003", "CORAL_COLONY_ADMIN_ENDPOINT: 127.0.0.1:9003"), None),
    ("systemd/colony.yaml", "a misspelt admin key", _sub("    red_metrics: true", "    red_metric: true"), None),
    # deploy/prometheus
    ("prometheus/prometheus.yml", "the RED exposition scraped at a path the colony does not serve", _sub("metrics_path: /metrics/red", "metrics_path: /metric/red"), None),
    ("prometheus/prometheus.yml", "a rules file that does not exist", _sub("  - coral-alerts.yml\n", "  - coral-alert.yml\n"), None),
    ("prometheus/prometheus.yml", "a value promtool refuses", _sub("scrape_interval: 60s", "scrape_interval: 60"), "promtool"),
    ("prometheus/coral-alerts.yml", "a rule with a bad expression (promtool)", _sub("expr: coral_agent_store_failing == 1", "expr: coral_agent_store_failing == == 1"), "promtool"),
    ("prometheus/coral-alerts.yml", "a metric Coral does not export", _sub("rate(coral_agent_requests_throttled_total[5m])", "rate(coral_agent_requests_throttle_total[5m])"), None),
    ("prometheus/coral-alerts.yml", "a label value the metric never has", _sub('coral_colony_agents{health="unreachable"}', 'coral_colony_agents{health="down"}'), None),
    ("prometheus/coral-alerts.yml", "aggregation by a label no metric has", _sub("sum by (service) (rate(coral_red_errors_total", "sum by (servce) (rate(coral_red_errors_total"), None),
    ("prometheus/coral-alerts.yml", "an alert without a severity", _sub("          severity: info\n", "          team: coral\n"), None),
    ("prometheus/coral-alerts.test.yml", "an expectation the rules do not meet (promtool)", _sub("summary: \"The colony recorded 500 rows as lost\"", "summary: \"The colony recorded 5 rows as lost\""), "promtool"),
    ("prometheus/coral-alerts.test.yml", "an alert no longer tested firing", lambda t: re.sub(r"(?s)  - name: the colony fails a commit\n.*?(?=\n  - name: )", "", t), None),
    # deploy/grafana
    ("grafana/coral-dashboard.json", "a metric Coral does not export", _sub("coral_colony_poll_failures_total", "coral_colony_poll_errors_total"), None),
    ("grafana/coral-dashboard.json", "a duplicate panel id", lambda t: re.sub(r'"id": 3,', '"id": 2,', t, count=1), None),
    ("grafana/coral-dashboard.json", "a panel without a description", lambda t: re.sub(r'"description": "Agents whose database[^"]*",', "", t, count=1), None),
    ("grafana/coral-dashboard.json", "a target bound to one data source", lambda t: t.replace('"uid": "${datasource}"', '"uid": "prometheus"', 3), None),
    ("grafana/coral-dashboard.json", "an undefined template variable", _sub('service=~\\"$service\\"', 'service=~\\"$servce\\"'), None),
    ("grafana/coral-dashboard.json", "a query that is not PromQL (promtool)", _sub("sum(coral_agent_store_failing)", "sum(coral_agent_store_failing"), "promtool"),
    ("grafana/coral-dashboard.json", "the service variable on an unknown metric", _sub("label_values(coral_red_requests_total, service)", "label_values(coral_red_request_total, service)", 2), None),
    ("grafana/coral-dashboard.json", "a duplicate key", _sub('"uid": "coral-overview",', '"uid": "coral-overview",\n  "uid": "coral",'), None),
    ("grafana/coral-dashboard.json", "overlapping panels", lambda t: re.sub(r'("gridPos": \{\s*"h": 5,\s*"w": 4,\s*"x": )6', r"\g<1>4", t, count=1), None),
    # --exported-metrics: a scrape without a family the rules use
    ("prometheus/coral-alerts.yml", "--exported-metrics without coral_colony_gap_rows_total", lambda t: t, None,
     lambda tmp: ["--exported-metrics", _metrics_file(tmp, omit="coral_colony_gap_rows_total")]),
]


def _metrics_file(tmp: Path, omit: str) -> str:
    """A --exported-metrics file of the built-in list without `omit`, in
    the forms a scrape gives (`# TYPE` lines) and bare names."""
    f = tmp / "exported-metrics.txt"
    lines = [f"# TYPE {n} {m.type}" if i % 2 else n
             for i, (n, m) in enumerate(EXPORTED_METRICS.items()) if n != omit]
    f.write_text("\n".join(lines) + "\n")
    return str(f)


def self_test(deploy: Path, args: argparse.Namespace) -> int:
    script = Path(__file__).resolve()
    print(f"self-test: {len(MUTATIONS)} broken copies of {deploy}; each run must fail and name the file")
    passed = failed = skipped = 0
    for rel, what, mutate, tool, *extra in MUTATIONS:
        with tempfile.TemporaryDirectory(prefix="coral-deploy-selftest-") as tmp:
            copy_root = Path(tmp) / "deploy"
            shutil.copytree(deploy, copy_root)
            target = copy_root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            original = target.read_text() if target.exists() else ""
            try:
                target.write_text(mutate(original))
            except AssertionError as e:
                print(f"FAIL  self-test {rel} ({what}): {e}")
                failed += 1
                continue
            if tool and not shutil.which(tool):
                print(f"SKIP  self-test {rel} ({what}): {tool} not found")
                skipped += 1
                continue
            cmd = [sys.executable, str(script), "--deploy-dir", str(copy_root), "--repo", str(args.repo),
                   "--k8s-versions", args.k8s_versions, "--quiet"]
            if extra:
                cmd += extra[0](Path(tmp))
            elif args.exported_metrics:
                cmd += ["--exported-metrics", str(args.exported_metrics.resolve())]
            r = subprocess.run(cmd, capture_output=True, text=True)
            name = f"deploy/{rel}"
            fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
            naming = [l for l in fails if l.startswith(f"FAIL  {name}:")]
            if r.returncode == 1 and naming:
                print(f"ok    self-test {name} ({what}) -> exit 1: {naming[0][6:][:220]}")
                passed += 1
            else:
                print(f"FAIL  self-test {name} ({what}): exit {r.returncode}, failures: {fails or r.stderr.strip()[-300:]}")
                failed += 1
    print(f"self-test: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deploy-dir", type=Path, default=REPO / "deploy", help="the deploy/ directory to check")
    ap.add_argument("--repo", type=Path, default=REPO,
                    help="repository whose docs and sources define Coral's flags, variables and config keys")
    ap.add_argument("--k8s-versions", default="1.29-latest",
                    help="Kubernetes versions to validate against, FROM-TO (TO may be `latest`, the newest "
                         "kubernetes-validate ships); default %(default)s")
    ap.add_argument("--require-tools", action="store_true",
                    help="fail instead of skipping when systemd-analyze, kubectl/kustomize or promtool is "
                         "missing (CI)")
    ap.add_argument("--exported-metrics", type=Path, metavar="FILE",
                    help="the metrics Coral exports, one family name a line (optionally followed by its type; "
                         "`# TYPE` lines of a scrape are read as such), instead of the built-in list")
    ap.add_argument("--self-test", action="store_true",
                    help="also break each file in a temporary copy and check that the run fails naming it")
    ap.add_argument("--quiet", action="store_true", help="print failures and skips only")
    args = ap.parse_args()

    missing = []
    if yaml is None:
        missing.append("PyYAML")
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        missing.append("kubernetes-validate")
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        missing.append("check-jsonschema")
    if missing:
        print(f"FAIL  missing Python packages: {', '.join(missing)} — "
              f"pip install -r scripts/validate-deploy-requirements.txt", file=sys.stderr)
        return 1

    deploy = args.deploy_dir.resolve()
    if not deploy.is_dir():
        print(f"no such directory: {deploy}", file=sys.stderr)
        return 2
    versions = k8s_versions(args.k8s_versions)
    metrics, metrics_source = EXPORTED_METRICS, "the built-in list"
    if args.exported_metrics:
        try:
            metrics = load_exported_metrics(args.exported_metrics)
        except (OSError, ValueError) as e:
            print(f"--exported-metrics: {e}", file=sys.stderr)
            return 2
        metrics_source = str(args.exported_metrics)
    rep = Report(deploy.parent, quiet=args.quiet)
    try:
        spec = read_spec(args.repo)
    except (OSError, RuntimeError) as e:
        print(f"FAIL  cannot read Coral's documented interface from {args.repo}: {e}")
        return 1
    if not args.quiet:
        import kubernetes_validate
        print(f"validating {deploy} (Kubernetes {', '.join(versions)}; kubernetes-validate "
              f"{kubernetes_validate.__version__}; flags, variables and config keys from {', '.join(spec.sources)})")

    check_inventory(deploy, rep)
    if (deploy / "systemd").is_dir():
        check_systemd(deploy, spec, rep, args.require_tools)
    if (deploy / "kubernetes").is_dir():
        check_kubernetes(deploy, spec, rep, versions, args.require_tools)
    if (deploy / "compose").is_dir():
        check_compose(deploy, spec, rep, args.require_tools)
    if (deploy / "otel-collector").is_dir():
        check_collector(deploy, rep)
    if (deploy / "docker").is_dir():
        check_docker(deploy, rep)
    if (deploy / "prometheus").is_dir():
        check_prometheus(deploy, metrics, metrics_source, rep, args.require_tools)
    if (deploy / "grafana").is_dir():
        check_grafana(deploy, metrics, metrics_source, rep, args.require_tools)
    check_metrics_doc(args.repo, metrics, metrics_source, rep)
    if args.exported_metrics:
        # The file is what Coral serves (the Prometheus test scrapes it): the
        # built-in list must be exactly that, or the checks above run against
        # a stale list when the file is not given.
        only_file = sorted(set(metrics) - set(EXPORTED_METRICS))
        only_list = sorted(set(EXPORTED_METRICS) - set(metrics))
        if only_file or only_list:
            rep.fail(Path(__file__).resolve(),
                     f"EXPORTED_METRICS and {metrics_source} differ: served but not listed: "
                     f"{', '.join(only_file) or '-'}; listed but not served: {', '.join(only_list) or '-'} "
                     f"— update EXPORTED_METRICS (and docs/metrics.md)")
        else:
            rep.ok(Path(__file__).resolve(), f"EXPORTED_METRICS matches {metrics_source}")

    print(f"deploy: {rep.passed} passed, {len(rep.failed)} failed, {len(rep.skipped)} skipped")
    status = 1 if rep.failed else 0
    if args.self_test:
        status = max(status, self_test(deploy, args))
    return status


if __name__ == "__main__":
    sys.exit(main())
