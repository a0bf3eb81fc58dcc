//! Faults to inject, their magnitudes and ground truth, and the decoys that
//! run alongside them.

use std::collections::HashMap;

/// The kinds of fault the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// A leaf dependency (card-validator) gets slower.
    SlowLeaf,
    /// A middle service's own work (payments) gets slower.
    SlowMiddle,
    /// A downstream service (fraud) starts failing; errors propagate up.
    DownstreamErrors,
    /// One SQL statement (inventory's UPDATE stock) gets slower.
    SlowSql,
    /// cart starts calling catalog once per item (N+1).
    NPlusOne,
    /// One payments instance (on node-c) of three gets slower.
    BadInstance,
    /// A new shipping version fails.
    BadVersion,
    /// Checkout traffic surges and the hosts saturate.
    TrafficSurge,
    /// A noisy neighbour saturates node-c's CPU (inventory's host).
    CpuSaturation,
    /// No fault.
    Healthy,
}

/// Where the fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truth {
    /// The service at fault.
    pub service: &'static str,
    /// Its operation.
    pub operation: &'static str,
    /// The host, when the fault sits on one.
    pub host: Option<&'static str>,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::SlowLeaf,
        FaultKind::SlowMiddle,
        FaultKind::DownstreamErrors,
        FaultKind::SlowSql,
        FaultKind::NPlusOne,
        FaultKind::BadInstance,
        FaultKind::BadVersion,
        FaultKind::TrafficSurge,
        FaultKind::CpuSaturation,
        FaultKind::Healthy,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::SlowLeaf => "slow leaf dependency",
            FaultKind::SlowMiddle => "slow self time (middle)",
            FaultKind::DownstreamErrors => "errors downstream",
            FaultKind::SlowSql => "slow SQL statement",
            FaultKind::NPlusOne => "N+1 calls",
            FaultKind::BadInstance => "one bad instance",
            FaultKind::BadVersion => "new version fails",
            FaultKind::TrafficSurge => "traffic surge",
            FaultKind::CpuSaturation => "host CPU saturation",
            FaultKind::Healthy => "healthy control",
        }
    }

    /// The ground truth; `None` for healthy controls.
    pub fn truth(self) -> Option<Truth> {
        let t = |service, operation, host| {
            Some(Truth {
                service,
                operation,
                host,
            })
        };
        match self {
            FaultKind::SlowLeaf => t("card-validator", "POST /validate", None),
            FaultKind::SlowMiddle => t("payments", "POST /charge", None),
            FaultKind::DownstreamErrors => t("fraud", "POST /score", None),
            FaultKind::SlowSql => t("inventory", "UPDATE stock", None),
            FaultKind::NPlusOne => t("cart", "GET /cart/:id", None),
            FaultKind::BadInstance => t("payments", "POST /charge", Some("node-c")),
            FaultKind::BadVersion => t("shipping", "GET /quote", None),
            FaultKind::TrafficSurge => t("checkout", "POST /api/checkout", None),
            FaultKind::CpuSaturation => t("inventory", "POST /reserve", Some("node-c")),
            FaultKind::Healthy => None,
        }
    }

    /// Three magnitudes, small to large.
    pub fn magnitudes(self) -> [f64; 3] {
        match self {
            FaultKind::SlowLeaf | FaultKind::SlowMiddle | FaultKind::SlowSql => {
                [40.0, 100.0, 250.0]
            }
            FaultKind::DownstreamErrors => [0.08, 0.2, 0.5],
            FaultKind::NPlusOne => [8.0, 12.0, 20.0],
            FaultKind::BadInstance => [90.0, 200.0, 500.0],
            FaultKind::BadVersion => [0.15, 0.3, 0.6],
            FaultKind::TrafficSurge => [3.0, 4.0, 5.0],
            FaultKind::CpuSaturation => [45.0, 52.0, 58.0],
            FaultKind::Healthy => [0.0, 0.0, 0.0],
        }
    }

    /// The symptom an SRE would ask about.
    pub fn question(self, service: &str, variant: u64) -> String {
        let failing = matches!(self, FaultKind::DownstreamErrors | FaultKind::BadVersion);
        match (failing, variant % 3) {
            (true, 0) => format!("why is {service} failing?"),
            (true, 1) => format!("{service} is throwing 5xx errors, why?"),
            (true, _) => format!("why are {service} requests failing in the last 15m?"),
            (false, 0) => format!("why is {service} slow?"),
            (false, 1) => format!("{service} p99 is up — why?"),
            (false, _) => format!("why is {service} slow in the last 15 minutes?"),
        }
    }
}

/// Things that change at the same time as the fault and must not be
/// blamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decoys {
    /// analytics (in parallel with payments, shorter) and the async
    /// notifications consumer get slower: off the critical path.
    pub off_path: bool,
    /// recommendations (not in checkout's tree) spikes: slower and failing.
    pub unrelated_spike: bool,
    /// cart rolls out a new version that changes nothing.
    pub harmless_deploy: bool,
}

/// One case of the suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The fault.
    pub fault: FaultKind,
    /// Its magnitude (ms added, error rate, factor, CPU points, items).
    pub magnitude: f64,
    /// The seed.
    pub seed: u64,
    /// Decoys.
    pub decoys: Decoys,
    /// The fault starts this many minutes before the end.
    pub fault_minutes: i64,
}

/// What is different once the fault starts.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Extra self time of (service, operation), ms.
    pub extra_self: HashMap<(&'static str, &'static str), f64>,
    /// Self-time factor of (service, operation).
    pub self_factor: HashMap<(&'static str, &'static str), f64>,
    /// Extra self time of every operation of (service, agent), ms.
    pub instance_extra: HashMap<(&'static str, &'static str), f64>,
    /// Extra duration of a database span (by span name), ms.
    pub db_extra: HashMap<&'static str, f64>,
    /// Extra error rate of (service, operation), with message and status.
    pub errors: HashMap<(&'static str, &'static str), (f64, &'static str, u16)>,
    /// Error rate of a (service, version).
    pub version_errors: HashMap<(&'static str, String), (f64, &'static str, u16)>,
    /// Version running on (service, agent).
    pub versions: HashMap<(&'static str, &'static str), String>,
    /// Items per cart (catalog calls per cart request).
    pub cart_items: Option<u32>,
    /// Traffic factor of an entry route (by operation name).
    pub route_factor: HashMap<&'static str, f64>,
    /// CPU points taken on an agent's host by something else.
    pub hog: HashMap<&'static str, f64>,
}

impl Scenario {
    /// The effects active from the fault's start.
    pub fn effects(&self) -> Effects {
        let mut e = Effects::default();
        let m = self.magnitude;
        match self.fault {
            FaultKind::SlowLeaf => {
                e.extra_self.insert(("card-validator", "POST /validate"), m);
            }
            FaultKind::SlowMiddle => {
                e.extra_self.insert(("payments", "POST /charge"), m);
            }
            FaultKind::DownstreamErrors => {
                e.errors.insert(
                    ("fraud", "POST /score"),
                    (m, "fraud model unavailable", 503),
                );
            }
            FaultKind::SlowSql => {
                e.db_extra.insert("UPDATE stock", m);
            }
            FaultKind::NPlusOne => e.cart_items = Some(m as u32),
            FaultKind::BadInstance => {
                e.instance_extra.insert(("payments", "node-c"), m);
            }
            FaultKind::BadVersion => {
                let v = "2.4.0".to_owned();
                e.versions.insert(("shipping", "node-b"), v.clone());
                if self.seed.is_multiple_of(2) {
                    e.versions.insert(("shipping", "node-a"), v.clone());
                }
                e.version_errors.insert(
                    ("shipping", v),
                    (m, "NullPointerException in QuoteCalculator", 500),
                );
            }
            FaultKind::TrafficSurge => {
                e.route_factor.insert("POST /checkout", m);
            }
            FaultKind::CpuSaturation => {
                e.hog.insert("node-c", m);
            }
            FaultKind::Healthy => {}
        }
        if self.decoys.off_path {
            e.extra_self.insert(("analytics", "POST /track"), 18.0);
            e.extra_self
                .insert(("notifications", "process order-placed"), 120.0);
        }
        if self.decoys.unrelated_spike {
            e.self_factor
                .insert(("recommendations", "GET /recommendations"), 4.0);
            e.errors.insert(
                ("recommendations", "GET /recommendations"),
                (0.05, "feature store timeout", 504),
            );
        }
        if self.decoys.harmless_deploy {
            e.versions.insert(("cart", "node-b"), "1.5.0".to_owned());
        }
        e
    }
}
