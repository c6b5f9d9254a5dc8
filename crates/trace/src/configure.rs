//! The remote exporters a user turned on: Langfuse and OTLP, from the environment or from
//! the `tracing:` section of `resources.yaml`. One function, [`exporters_from_env`], used
//! by the CLI, the Python package and the server alike, so they all behave the same.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::ConfigError;
use crate::export::Exporter;
use crate::langfuse::{LangfuseConfig, LangfuseExporter};
use crate::otlp::{OtlpConfig, OtlpExporter, flag};

/// The exporters [`exporters_from_env`] built, and the secret values their settings hold
/// (the Langfuse secret key, OTLP header values): add them to the redactor's secret set so
/// they never reach an output or a trace.
#[derive(Default)]
pub struct ConfiguredExporters {
    /// The exporters, in the order Langfuse, OTLP (those turned on).
    pub exporters: Vec<Arc<dyn Exporter>>,
    /// Secret values of their settings.
    pub secrets: Vec<String>,
    /// One line per exporter saying where it sends (`otlp http/protobuf to http://...`),
    /// with no secret in it.
    pub descriptions: Vec<String>,
}

impl fmt::Debug for ConfiguredExporters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfiguredExporters")
            .field("exporters", &self.exporters.iter().map(|e| e.name()).collect::<Vec<_>>())
            .field("secrets", &format_args!("<{} redacted>", self.secrets.len()))
            .field("descriptions", &self.descriptions)
            .finish()
    }
}

/// Whether the section turns its exporter on (`enabled`, default true).
fn enabled(at: &str, section: &Value) -> Result<bool, ConfigError> {
    match section.get("enabled") {
        None | Some(Value::Null) => Ok(true),
        Some(v) => flag(v).ok_or_else(|| ConfigError::Tracing(format!("{at}.enabled must be true or false"))),
    }
}

/// Whether the standard variables turn OTLP trace export on: an endpoint is set, or
/// `OTEL_TRACES_EXPORTER` names `otlp`; and neither `OTEL_SDK_DISABLED=true` nor an
/// `OTEL_TRACES_EXPORTER` without `otlp` (e.g. `none`) turns it off.
fn otlp_wanted(get: &dyn Fn(&str) -> Option<String>) -> bool {
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let named = get("OTEL_TRACES_EXPORTER").map(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("otlp")));
    match named {
        Some(named) => named,
        None => get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some(),
    }
}

/// The remote exporters turned on by `env` (a variable lookup: the process environment,
/// a map in tests, the server's per-tenant settings) and by `section` (the `tracing:`
/// section of `resources.yaml`, its `${VAR}`s already replaced).
///
/// For each exporter, a `tracing.langfuse` / `tracing.otlp` entry in the section is its
/// whole configuration (environment variables reach it through `${VAR}`, and `enabled:
/// false` turns it off); without one, the standard variables are read:
///
/// - Langfuse, when `LANGFUSE_PUBLIC_KEY` or `LANGFUSE_SECRET_KEY` is set (both are then
///   required): [`LangfuseConfig::from_lookup`];
/// - OTLP, when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
///   set or `OTEL_TRACES_EXPORTER` names `otlp` (and not with `OTEL_SDK_DISABLED=true`
///   or `OTEL_TRACES_EXPORTER=none`): [`OtlpConfig::from_lookup`].
///
/// A bad value is an error naming the variable or setting; no error contains a key or a
/// header value. Building needs no tokio runtime and makes no request.
pub fn exporters_from_env(
    env: &dyn Fn(&str) -> Option<String>,
    section: Option<&Value>,
) -> Result<ConfiguredExporters, ConfigError> {
    let get = |k: &str| env(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let section = match section {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "langfuse" | "otlp")) {
                return Err(ConfigError::Tracing(format!("tracing.{k}: unknown exporter (known: langfuse, otlp)")));
            }
            Some(m)
        }
        Some(_) => return Err(ConfigError::Tracing("tracing must be a mapping (langfuse:, otlp:)".into())),
    };
    let mut out = ConfiguredExporters::default();

    let langfuse = match section.and_then(|s| s.get("langfuse")) {
        Some(v) if enabled("tracing.langfuse", v)? => Some(LangfuseConfig::from_section(v)?),
        Some(_) => None,
        None if get("LANGFUSE_PUBLIC_KEY").is_some() || get("LANGFUSE_SECRET_KEY").is_some() => {
            Some(LangfuseConfig::from_lookup(get)?)
        }
        None => None,
    };
    if let Some(config) = langfuse {
        out.secrets.push(config.secret_key.clone());
        out.descriptions.push(format!("langfuse to {}", config.host));
        out.exporters.push(Arc::new(LangfuseExporter::new(config)?));
    }

    let otlp = match section.and_then(|s| s.get("otlp")) {
        Some(v) if enabled("tracing.otlp", v)? => Some(OtlpConfig::from_section(v)?),
        Some(_) => None,
        None if otlp_wanted(&get) => Some(OtlpConfig::from_lookup(get)?),
        None => None,
    };
    if let Some(config) = otlp {
        out.secrets.extend(config.headers.iter().map(|(_, v)| v.clone()));
        out.descriptions.push(format!("otlp {} to {}", config.protocol, config.traces_url()));
        out.exporters.push(Arc::new(OtlpExporter::new(config)?));
    }
    out.secrets.retain(|s| !s.is_empty());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn names(c: &ConfiguredExporters) -> Vec<&str> {
        c.exporters.iter().map(|e| e.name()).collect()
    }

    fn error(vars: &[(&str, &str)], section: Option<Value>) -> String {
        match exporters_from_env(&lookup(vars), section.as_ref()) {
            Ok(c) => format!("no error: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn nothing_set_means_no_exporter() {
        let c = exporters_from_env(&lookup(&[("PATH", "/bin")]), None).unwrap_or_default();
        assert!(c.exporters.is_empty() && c.secrets.is_empty());
    }

    #[test]
    fn the_standard_variables_turn_exporters_on() {
        let vars = [
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-secret"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%3D%3D,other=zz"),
        ];
        let c = exporters_from_env(&lookup(&vars), None).unwrap_or_default();
        assert_eq!(names(&c), ["langfuse", "otlp"]);
        assert_eq!(c.secrets, ["sk-lf-secret", "abc==", "zz"]);
        assert_eq!(
            c.descriptions,
            ["langfuse to https://cloud.langfuse.com", "otlp http/protobuf to http://127.0.0.1:4318/v1/traces"]
        );
        let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), ("OTEL_TRACES_EXPORTER", "none")];
        assert!(exporters_from_env(&lookup(&off), None).unwrap_or_default().exporters.is_empty());
        let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), ("OTEL_SDK_DISABLED", "TRUE")];
        assert!(exporters_from_env(&lookup(&off), None).unwrap_or_default().exporters.is_empty());
        let default_endpoint =
            exporters_from_env(&lookup(&[("OTEL_TRACES_EXPORTER", "otlp")]), None).unwrap_or_default();
        assert_eq!(default_endpoint.descriptions, ["otlp http/protobuf to http://localhost:4318/v1/traces"]);
    }

    #[test]
    fn bad_values_name_the_variable_and_never_the_secret() {
        let e = error(&[("LANGFUSE_PUBLIC_KEY", "pk-lf-1")], None);
        assert_eq!(e, "environment variable LANGFUSE_SECRET_KEY is not set");
        let e =
            error(&[("LANGFUSE_SECRET_KEY", "sk-1"), ("LANGFUSE_PUBLIC_KEY", "pk"), ("LANGFUSE_HOST", "nope")], None);
        assert!(e.contains("LANGFUSE_HOST: not a URL"), "{e}");
        let e = error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")], None);
        assert!(e.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{e}");
        let e = error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:1"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], None);
        assert!(e.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"), "{e}");
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:1");
        let e = error(&[base, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/xml")], None);
        assert!(e.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: unknown protocol"), "{e}");
        let e = error(&[base, ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer topsecret,broken")], None);
        assert!(e.contains("OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value") && !e.contains("topsecret"), "{e}");
        let e = error(&[base, ("OTEL_EXPORTER_OTLP_HEADERS", "x-key=line%0Abreak-secret")], None);
        assert!(e.contains("OTEL_EXPORTER_OTLP_HEADERS") && !e.contains("break-secret"), "{e}");
        let e = error(&[base, ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")], None);
        assert!(e.contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{e}");
        let e = error(&[base, ("OTEL_RESOURCE_ATTRIBUTES", "team")], None);
        assert!(e.contains("OTEL_RESOURCE_ATTRIBUTES: entry 1"), "{e}");
    }

    #[test]
    fn the_section_is_the_whole_configuration_of_its_exporter() {
        let section = json!({
            "langfuse": {"public_key": "pk-lf-2", "secret_key": "sk-from-yaml", "host": "http://127.0.0.1:3000", "tags": ["a"]},
            "otlp": {"endpoint": "http://127.0.0.1:4318", "protocol": "http/json", "headers": {"x-api-key": "hdr-secret"},
                     "service_name": "svc", "resource_attributes": {"deployment.environment": "prod"}},
        });
        // The section wins over the variables of the same exporter.
        let vars = [("LANGFUSE_PUBLIC_KEY", "pk-env"), ("LANGFUSE_SECRET_KEY", "sk-env")];
        let c = exporters_from_env(&lookup(&vars), Some(&section)).unwrap_or_default();
        assert_eq!(names(&c), ["langfuse", "otlp"]);
        assert_eq!(c.secrets, ["sk-from-yaml", "hdr-secret"]);
        assert_eq!(
            c.descriptions,
            ["langfuse to http://127.0.0.1:3000", "otlp http/json to http://127.0.0.1:4318/v1/traces"]
        );
        let off = json!({"otlp": {"enabled": "false", "endpoint": "http://x:1"}});
        let c = exporters_from_env(&lookup(&[]), Some(&off)).unwrap_or_default();
        assert!(c.exporters.is_empty());
    }

    #[test]
    fn bad_sections_name_the_setting() {
        assert!(error(&[], Some(json!({"zipkin": {}}))).contains("tracing.zipkin: unknown exporter"));
        assert!(error(&[], Some(json!(["otlp"]))).contains("tracing must be a mapping"));
        let e = error(&[], Some(json!({"langfuse": {"public_key": "pk", "secret_key": ""}})));
        assert!(e.contains("tracing.langfuse.secret_key is required"), "{e}");
        let e = error(&[], Some(json!({"otlp": {"protocol": "grpc"}})));
        assert!(e.contains("tracing.otlp.protocol=grpc"), "{e}");
        let e = error(&[], Some(json!({"otlp": {"endpoint": "http://h:1", "sampler": 1}})));
        assert!(e.contains("tracing.otlp.sampler: unknown setting"), "{e}");
        let e = error(&[], Some(json!({"otlp": {"enabled": "maybe"}})));
        assert!(e.contains("tracing.otlp.enabled must be true or false"), "{e}");
    }
}
