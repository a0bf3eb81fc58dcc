//! `coral mcp`: Coral for AI assistants, over the Model Context Protocol.
//!
//! An MCP server (the `rmcp` SDK) that answers from the colony's gRPC API
//! with a few bounded tools: every result says whether it was cut
//! (`truncated`) and what it was cut from, and stays under about 5,000
//! tokens. Over stdio (what desktop assistants launch) or Streamable HTTP
//! (`--http ADDR`, bearer-token protected when a token is set).
//!
//! - [`tools`]: the tools and their arguments.
//! - [`shape`]: what each returns, as pure functions, and the budget.
//! - [`asks`]: the last answers, readable as resources.
//! - [`http`]: serving over Streamable HTTP.
//! - this module: the server's info, resources and prompt, and `run`.

mod asks;
mod http;
mod shape;
mod tools;

use std::net::SocketAddr;

use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourcesResult, PaginatedRequestParams, Prompt, PromptArgument, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool_handler};

use crate::client::{Client, ColonyArgs};

/// Arguments of `coral mcp`.
#[derive(clap::Args, Debug)]
pub struct McpArgs {
    /// Serve Streamable HTTP on this address (e.g. 127.0.0.1:7070) at
    /// /mcp, instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Bearer token HTTP clients must send (default: the colony's
    /// --token). Required to serve on an address other than loopback.
    #[arg(long, env = "CORAL_MCP_TOKEN", hide_env_values = true)]
    http_token: Option<String>,
    /// Host names HTTP clients may use besides localhost, 127.0.0.1 and
    /// ::1 (a DNS-rebinding guard; repeat for several).
    #[arg(long, value_name = "HOST")]
    allowed_host: Vec<String>,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// The MCP server: a colony client, the tool router and the last asks.
#[derive(Clone)]
pub struct CoralMcp {
    client: Client,
    colony: ColonyArgs,
    asks: asks::Asks,
    tool_router: rmcp::handler::server::router::tool::ToolRouter<CoralMcp>,
}

impl CoralMcp {
    /// A server answering from the colony `colony` names.
    pub fn new(colony: ColonyArgs) -> anyhow::Result<CoralMcp> {
        Ok(CoralMcp {
            client: colony.client()?,
            colony,
            asks: asks::Asks::default(),
            tool_router: CoralMcp::tool_router(),
        })
    }
}

/// The resource listing the services of the last hour.
const SERVICES_URI: &str = "coral://services";
/// The prompt's name.
const PROMPT: &str = "diagnose_service";

fn text_resource(uri: &str, text: String) -> ReadResourceResponse {
    ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type("application/json"),
    ])
    .into()
}

/// The messages of `diagnose_service`.
fn diagnose_prompt(service: &str, symptom: &str) -> String {
    let question = match symptom {
        "errors" => format!("why is {service} failing?"),
        "traffic" => format!("why did {service}'s traffic change?"),
        _ => format!("why is {service} slow?"),
    };
    format!(
        "Diagnose {service} with Coral's tools, and only from their results.\n\
         1. Call coral_ask with question \"{question}\" (and service \"{service}\").\n\
         2. If the verdict is \"regression\": for the first two causes, call get_trace \
         (detail critical_path) on one trace id from the evidence each cause cites, and \
         check that the cause's service and operation are on that critical path.\n\
         3. If the verdict is \"no_regression\" or \"inconclusive\", say so and quote its \
         coverage (missing data, minutes with data); call compare_windows if useful.\n\
         Answer in a few sentences: the cause, its chain, the numbers baseline → \
         incident, the evidence ids (e.g. [e5]) and trace ids you opened. Quote numbers \
         exactly as the tools gave them; do not invent any."
    )
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CoralMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("coral", env!("CARGO_PKG_VERSION")))
        .with_instructions(format!(
            "Coral: RED metrics and traces of every service. Start with coral_ask \
             (\"why is checkout slow?\"); open the trace ids it cites with get_trace. {}",
            tools::WINDOWS
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut resources = vec![
            Resource::new(SERVICES_URI, "services")
                .with_description("Services of the last hour: requests, errors, p95, source.")
                .with_mime_type("application/json"),
        ];
        for ask in self.asks.list() {
            resources.push(
                Resource::new(ask.uri(), format!("ask {}", ask.number))
                    .with_description(format!(
                        "{} → {} ({})",
                        ask.question, ask.verdict, ask.service
                    ))
                    .with_mime_type("application/json"),
            );
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        if uri == SERVICES_URI {
            let w = shape::window(None, "1h", tools::now_ms())
                .map_err(|e| ErrorData::internal_error(e, None))?;
            let services = self
                .client
                .clone()
                .list_services(coral_proto::colony::ListServicesRequest {
                    start_time_unix_ms: w.from_ms,
                    end_time_unix_ms: w.to_ms,
                })
                .await
                .map_err(|s| ErrorData::internal_error(self.colony.explain(s).to_string(), None))?
                .into_inner()
                .services;
            let doc = shape::fit(
                shape::services(&services, w, 120),
                &["services"],
                shape::MAX_RESULT_CHARS,
            );
            return Ok(text_resource(uri, doc.to_string()));
        }
        match self.asks.get(uri) {
            Some(ask) => Ok(text_resource(uri, ask.document.to_string())),
            None => Err(ErrorData::resource_not_found(
                format!(
                    "no resource {uri}: resources are {SERVICES_URI} and coral://asks/<n> for the last {} answers of coral_ask",
                    asks::KEPT
                ),
                None,
            )),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            PROMPT,
            Some("Diagnose a service: coral_ask, then get_trace on the traces it cites."),
            Some(vec![
                PromptArgument::new("service").with_required(true),
                PromptArgument::new("symptom")
                    .with_description("latency (default), errors or traffic"),
            ]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != PROMPT {
            return Err(ErrorData::invalid_params(
                format!("no prompt {:?}; the prompt is {PROMPT}", request.name),
                None,
            ));
        }
        let arg = |name: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(name))
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let Some(service) = arg("service") else {
            return Err(ErrorData::invalid_params(
                "diagnose_service needs the argument service",
                None,
            ));
        };
        let symptom = arg("symptom").unwrap_or_else(|| "latency".into());
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            diagnose_prompt(&service, &symptom),
        )])
        .with_description(format!("Diagnose {service} ({symptom})"))
        .into())
    }
}

/// Serves MCP over stdio, or over Streamable HTTP with `--http`.
pub async fn run(args: McpArgs) -> anyhow::Result<()> {
    let server = CoralMcp::new(args.colony.clone())?;
    if let Some(addr) = args.http {
        let token = args.http_token.clone().or(args.colony.token.clone());
        return http::serve(server, addr, token, args.allowed_host).await;
    }
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("MCP session did not start on stdio: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| anyhow::anyhow!("MCP session ended with an error: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tool definition together, as `tools/list` sends them, stays
    /// under 2,000 tokens: 4 characters a token is the usual estimate for
    /// JSON and English; 3.5 is held here to leave a margin.
    #[test]
    fn tool_definitions_stay_under_two_thousand_tokens() {
        let tools = CoralMcp::tool_router().list_all();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "compare_windows",
                "coral_ask",
                "get_trace",
                "host_metrics",
                "list_services",
                "list_traces",
                "service_red"
            ]
        );
        for t in &tools {
            let size = serde_json::to_string(t).unwrap().len();
            eprintln!("tool {}: {size} characters", t.name);
        }
        let chars = serde_json::to_string(&tools).unwrap().len();
        let tokens = chars as f64 / 3.5;
        eprintln!("tool definitions: {chars} characters, ~{tokens:.0} tokens");
        assert!(tokens < 2000.0, "{chars} characters, ~{tokens:.0} tokens");
    }

    #[test]
    fn the_prompt_names_the_tools_in_order() {
        let text = diagnose_prompt("checkout", "errors");
        assert!(text.contains("\"why is checkout failing?\""), "{text}");
        let ask = text.find("coral_ask").unwrap();
        let trace = text.find("get_trace").unwrap();
        assert!(ask < trace);
    }
}
