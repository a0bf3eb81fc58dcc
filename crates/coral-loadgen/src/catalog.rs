//! Static "shop" catalog the synthetic traffic is drawn from: services, their
//! SDKs and HTTP routes, user agents. Values mimic what OpenTelemetry HTTP
//! server instrumentations emit (semantic conventions v1.26+ attribute names).

/// One instrumented service.
pub struct Service {
    /// `service.name`.
    pub name: &'static str,
    /// `service.version`.
    pub version: &'static str,
    /// `telemetry.sdk.language`.
    pub language: &'static str,
    /// `telemetry.sdk.version`.
    pub sdk_version: &'static str,
    /// Instrumentation scope name.
    pub scope_name: &'static str,
    /// Instrumentation scope version.
    pub scope_version: &'static str,
    /// `(method, route)` pairs the service serves.
    pub routes: &'static [(&'static str, &'static str)],
}

/// The services a payload variant is drawn from (variant `i` uses service
/// `i % SERVICES.len()`, so every service is equally represented).
pub const SERVICES: &[Service] = &[
    Service {
        name: "checkout",
        version: "2.14.3",
        language: "java",
        sdk_version: "1.45.0",
        scope_name: "io.opentelemetry.tomcat-10.0",
        scope_version: "2.11.0-alpha",
        routes: &[
            ("POST", "/api/v1/checkout"),
            ("GET", "/api/v1/orders/{id}"),
            ("GET", "/api/v1/orders"),
            ("POST", "/api/v1/orders/{id}/cancel"),
        ],
    },
    Service {
        name: "payments",
        version: "1.8.0",
        language: "go",
        sdk_version: "1.33.0",
        scope_name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
        scope_version: "0.58.0",
        routes: &[
            ("POST", "/api/v1/payments"),
            ("GET", "/api/v1/payments/{id}"),
            ("POST", "/api/v1/payments/{id}/refund"),
        ],
    },
    Service {
        name: "cart",
        version: "3.2.1",
        language: "nodejs",
        sdk_version: "1.30.0",
        scope_name: "@opentelemetry/instrumentation-http",
        scope_version: "0.57.1",
        routes: &[
            ("GET", "/api/v1/carts/{id}"),
            ("PUT", "/api/v1/carts/{id}/items"),
            ("DELETE", "/api/v1/carts/{id}/items/{itemId}"),
        ],
    },
    Service {
        name: "catalog",
        version: "5.0.7",
        language: "python",
        sdk_version: "1.29.0",
        scope_name: "opentelemetry.instrumentation.flask",
        scope_version: "0.50b0",
        routes: &[
            ("GET", "/api/v1/products"),
            ("GET", "/api/v1/products/{id}"),
            ("GET", "/api/v1/categories/{slug}"),
        ],
    },
    Service {
        name: "inventory",
        version: "1.21.0",
        language: "java",
        sdk_version: "1.45.0",
        scope_name: "io.opentelemetry.spring-webmvc-6.0",
        scope_version: "2.11.0-alpha",
        routes: &[
            ("GET", "/api/v1/stock/{sku}"),
            ("POST", "/api/v1/reservations"),
            ("DELETE", "/api/v1/reservations/{id}"),
        ],
    },
    Service {
        name: "shipping",
        version: "0.9.4",
        language: "go",
        sdk_version: "1.33.0",
        scope_name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
        scope_version: "0.58.0",
        routes: &[
            ("POST", "/api/v1/quotes"),
            ("GET", "/api/v1/shipments/{id}"),
        ],
    },
    Service {
        name: "users",
        version: "4.3.0",
        language: "rust",
        sdk_version: "0.27.1",
        scope_name: "axum-tracing-opentelemetry",
        scope_version: "0.24.1",
        routes: &[
            ("GET", "/api/v1/users/{id}"),
            ("POST", "/api/v1/sessions"),
            ("PATCH", "/api/v1/users/{id}/preferences"),
        ],
    },
    Service {
        name: "recommendations",
        version: "2.0.2",
        language: "python",
        sdk_version: "1.29.0",
        scope_name: "opentelemetry.instrumentation.fastapi",
        scope_version: "0.50b0",
        routes: &[
            ("GET", "/api/v1/recommendations"),
            ("GET", "/api/v1/recommendations/{id}/similar"),
        ],
    },
];

/// `user_agent.original` values seen at the edge and between services.
pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "okhttp/4.12.0",
    "Go-http-client/1.1",
    "python-requests/2.32.3",
    "axios/1.7.9",
    "ShopApp/7.4.1 (Android 14; Pixel 8)",
];

/// Values substituted for `{slug}` route parameters.
pub const SLUGS: &[&str] = &[
    "shoes",
    "outdoor",
    "kitchen",
    "electronics",
    "books",
    "toys",
];
