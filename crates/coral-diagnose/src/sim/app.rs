//! The simulated application: 13 services over three hosts (several
//! instances of some), a call graph with sequential and parallel calls,
//! fan-out, databases, a queue with a consumer, and three entry routes.
//!
//! ```text
//! frontend GET /            → catalog GET /products (→ SELECT) ‖ recommendations
//! frontend GET /product/:id → catalog GET /products/:id (→ SELECT), recommendations
//! frontend POST /checkout   → checkout POST /api/checkout
//!     → cart GET /cart/:id (→ HGETALL, → catalog GET /products/:id × items)
//!     → inventory POST /reserve (→ SELECT stock, UPDATE stock) ‖ shipping GET /quote
//!     → payments POST /charge (→ card-validator POST /validate, → fraud POST /score) ‖ analytics POST /track
//!     → publish order-placed ⇒ notifications process order-placed → email POST /send
//! ```

use coral_model::SpanKind;

/// Index of an operation.
pub type OpId = usize;

/// The three hosts (one agent each).
pub const AGENTS: [&str; 3] = ["node-a", "node-b", "node-c"];

/// One instance of a service.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its agent (and host).
    pub agent: &'static str,
    /// Its pod name.
    pub pod: String,
    /// Its `service.version`.
    pub version: String,
}

/// A service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Name.
    pub name: &'static str,
    /// Instances (requests are spread evenly).
    pub instances: Vec<Instance>,
}

/// A database call (a CLIENT span of the caller).
#[derive(Debug, Clone)]
pub struct Db {
    /// `db.system`.
    pub system: &'static str,
    /// Span name, e.g. `UPDATE stock`.
    pub name: &'static str,
    /// `db.statement`.
    pub statement: &'static str,
    /// Median duration, ms.
    pub median_ms: f64,
}

/// What a call goes to.
#[derive(Debug, Clone)]
pub enum Target {
    /// Another service's operation (HTTP: a CLIENT span, then its SERVER span).
    Op(OpId),
    /// A database.
    Db(Db),
}

/// One call.
#[derive(Debug, Clone)]
pub struct Call {
    /// What is called.
    pub target: Target,
    /// Times per request.
    pub count: u32,
    /// A failure fails the caller.
    pub required: bool,
}

/// A step of an operation.
#[derive(Debug, Clone)]
pub enum Step {
    /// Calls, one after the other.
    Seq(Call),
    /// Calls at the same time; the step ends with the last.
    Par(Vec<Call>),
    /// A message to a queue, consumed later by an operation.
    Publish(&'static str, OpId),
}

/// An operation (a SERVER or CONSUMER span).
#[derive(Debug, Clone)]
pub struct Op {
    /// Its service (index).
    pub service: usize,
    /// Span name.
    pub name: &'static str,
    /// SERVER or CONSUMER.
    pub kind: SpanKind,
    /// `http.route`, when HTTP.
    pub route: Option<&'static str>,
    /// Median self time, ms.
    pub self_ms: f64,
    /// Background error rate.
    pub error_rate: f64,
    /// Background error message and HTTP status.
    pub error: (&'static str, u16),
    /// Steps, in order.
    pub steps: Vec<Step>,
}

/// An entry route and its traffic.
#[derive(Debug, Clone)]
pub struct Route {
    /// The entry operation.
    pub op: OpId,
    /// Mean requests per minute.
    pub per_minute: f64,
}

/// The application.
#[derive(Debug, Clone)]
pub struct App {
    /// Services.
    pub services: Vec<Service>,
    /// Operations.
    pub ops: Vec<Op>,
    /// Entry routes.
    pub routes: Vec<Route>,
}

impl App {
    /// The service of an operation.
    pub fn service_of(&self, op: OpId) -> &Service {
        &self.services[self.ops[op].service]
    }

    /// An operation by service and name.
    pub fn find(&self, service: &str, name: &str) -> Option<OpId> {
        self.ops
            .iter()
            .position(|o| self.services[o.service].name == service && o.name == name)
    }

    /// A service by name.
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    /// The shop.
    pub fn shop() -> App {
        let svc = |name: &'static str, agents: &[&'static str], version: &str| Service {
            name,
            instances: agents
                .iter()
                .enumerate()
                .map(|(i, a)| Instance {
                    agent: a,
                    pod: format!("{name}-7d9f{i}c-x{i}{}", a.len()),
                    version: version.to_owned(),
                })
                .collect(),
        };
        let services = vec![
            svc("frontend", &["node-a", "node-b"], "3.2.0"),
            svc("checkout", &["node-a", "node-b"], "1.8.2"),
            svc("cart", &["node-b"], "1.4.0"),
            svc("catalog", &["node-a", "node-c"], "2.0.1"),
            svc("payments", &["node-a", "node-b", "node-c"], "5.1.0"),
            svc("card-validator", &["node-b"], "0.9.3"),
            svc("fraud", &["node-a"], "1.1.0"),
            svc("inventory", &["node-c"], "3.3.0"),
            svc("shipping", &["node-a", "node-b"], "2.3.1"),
            svc("analytics", &["node-b"], "0.4.0"),
            svc("notifications", &["node-c"], "1.0.7"),
            svc("email", &["node-a"], "1.2.0"),
            svc("recommendations", &["node-c"], "4.0.0"),
        ];
        let mut app = App {
            services,
            ops: Vec::new(),
            routes: Vec::new(),
        };
        let op = |app: &mut App,
                  service: &str,
                  name: &'static str,
                  self_ms: f64,
                  err: (&'static str, u16)| {
            let s = app.service_index(service).expect("known service");
            app.ops.push(Op {
                service: s,
                name,
                kind: SpanKind::Server,
                route: name.split_once(' ').map(|(_, r)| r),
                self_ms,
                error_rate: 0.001,
                error: err,
                steps: Vec::new(),
            });
            app.ops.len() - 1
        };
        let db = |system, name, statement, median_ms| {
            Target::Db(Db {
                system,
                name,
                statement,
                median_ms,
            })
        };
        let call = |target: Target| Call {
            target,
            count: 1,
            required: true,
        };
        let optional = |target: Target| Call {
            target,
            count: 1,
            required: false,
        };
        let unavailable = ("upstream connect error", 503);
        let email = op(
            &mut app,
            "email",
            "POST /send",
            30.0,
            ("smtp relay refused", 502),
        );
        let notify = op(
            &mut app,
            "notifications",
            "process order-placed",
            5.0,
            ("template missing", 500),
        );
        app.ops[notify].kind = SpanKind::Consumer;
        app.ops[notify].route = None;
        app.ops[notify].steps = vec![Step::Seq(call(Target::Op(email)))];
        let recs = op(
            &mut app,
            "recommendations",
            "GET /recommendations",
            25.0,
            unavailable,
        );
        let product = op(&mut app, "catalog", "GET /products/:id", 2.0, unavailable);
        app.ops[product].steps = vec![Step::Seq(call(db(
            "postgresql",
            "SELECT products",
            "SELECT id, name, price FROM products WHERE id = 4711",
            2.0,
        )))];
        let products = op(&mut app, "catalog", "GET /products", 4.0, unavailable);
        app.ops[products].steps = vec![Step::Seq(call(db(
            "postgresql",
            "SELECT products",
            "SELECT id, name, price FROM products ORDER BY rank LIMIT 20",
            4.0,
        )))];
        let cart = op(&mut app, "cart", "GET /cart/:id", 3.0, unavailable);
        app.ops[cart].steps = vec![
            Step::Seq(call(db("redis", "HGETALL", "HGETALL cart:12345", 0.8))),
            Step::Seq(call(Target::Op(product))),
        ];
        let inventory = op(
            &mut app,
            "inventory",
            "POST /reserve",
            15.0,
            ("stock service timeout", 504),
        );
        app.ops[inventory].steps = vec![
            Step::Seq(call(db(
                "postgresql",
                "SELECT stock",
                "SELECT qty FROM stock WHERE sku = 'ab-1' FOR UPDATE",
                3.0,
            ))),
            Step::Seq(call(db(
                "postgresql",
                "UPDATE stock",
                "UPDATE stock SET qty = qty - 1 WHERE sku = 'ab-1'",
                5.0,
            ))),
        ];
        let shipping = op(&mut app, "shipping", "GET /quote", 10.0, unavailable);
        let validator = op(
            &mut app,
            "card-validator",
            "POST /validate",
            20.0,
            ("issuer unavailable", 503),
        );
        let fraud = op(
            &mut app,
            "fraud",
            "POST /score",
            10.0,
            ("model unavailable", 503),
        );
        let payments = op(
            &mut app,
            "payments",
            "POST /charge",
            12.0,
            ("payment declined by gateway", 502),
        );
        app.ops[payments].steps = vec![
            Step::Seq(call(Target::Op(validator))),
            Step::Seq(call(Target::Op(fraud))),
        ];
        let analytics = op(&mut app, "analytics", "POST /track", 4.0, unavailable);
        let checkout = op(
            &mut app,
            "checkout",
            "POST /api/checkout",
            8.0,
            ("order validation failed", 500),
        );
        app.ops[checkout].steps = vec![
            Step::Seq(call(Target::Op(cart))),
            Step::Par(vec![
                call(Target::Op(inventory)),
                call(Target::Op(shipping)),
            ]),
            Step::Par(vec![
                call(Target::Op(payments)),
                optional(Target::Op(analytics)),
            ]),
            Step::Publish("order-placed", notify),
        ];
        let home = op(&mut app, "frontend", "GET /", 6.0, unavailable);
        app.ops[home].steps = vec![Step::Par(vec![
            call(Target::Op(products)),
            optional(Target::Op(recs)),
        ])];
        let page = op(&mut app, "frontend", "GET /product/:id", 5.0, unavailable);
        app.ops[page].steps = vec![
            Step::Seq(call(Target::Op(product))),
            Step::Seq(optional(Target::Op(recs))),
        ];
        let buy = op(&mut app, "frontend", "POST /checkout", 4.0, unavailable);
        app.ops[buy].steps = vec![Step::Seq(call(Target::Op(checkout)))];
        app.routes = vec![
            Route {
                op: home,
                per_minute: 30.0,
            },
            Route {
                op: page,
                per_minute: 45.0,
            },
            Route {
                op: buy,
                per_minute: 90.0,
            },
        ];
        app
    }
}
