//! Typed configuration: built-in defaults < `--config` TOML file < `DESKWATCH__SECTION__KEY`
//! environment variables, layered with figment. Unknown keys are errors; `validate()` names the
//! key at fault; secrets print as `***`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("config/default.toml");

/// Errors of loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read as configuration.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("invalid configuration: `{key}` {problem}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

pub use crate::base::Secret;

/// Replaces a secret written `env:NAME` by the value of that environment variable (a
/// Kubernetes secret, a compose file's environment), so the file holds no secret.
fn read_env(secret: &mut Secret, key: String) -> Result<(), ConfigError> {
    let Some(var) = secret.expose().strip_prefix("env:") else {
        return Ok(());
    };
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            *secret = Secret::new(v.trim().to_string());
            Ok(())
        }
        _ => Err(ConfigError::Invalid {
            key,
            problem: format!("reads environment variable {var}, which is not set or empty"),
        }),
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Submit events.
    Ingest,
    /// Query and read.
    Read,
    /// Everything.
    Admin,
}

/// One bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Token {
    /// Who holds it (for logs).
    pub name: String,
    /// The token.
    pub token: Secret,
    /// Its roles.
    pub roles: Vec<Role>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Server {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout_seconds: u64,
    /// Listen on a non-loopback address without `[auth]` tokens (anyone who reaches the port
    /// may ingest, query and replay). Off: such a start is refused.
    pub insecure_no_auth: bool,
    /// `/metrics` requires a token with the read role (off: open, as Prometheus expects).
    pub metrics_auth: bool,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Storage {
    /// Data directory (event log and checkpoints).
    pub data_dir: PathBuf,
    /// Checkpoint at least this often when events arrive.
    pub checkpoint_interval_seconds: u64,
    /// Checkpoint after this many events.
    pub checkpoint_every_events: u64,
}

/// `[auth]`. With no tokens, the API is open (a warning is logged).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Auth {
    /// Bearer tokens.
    pub tokens: Vec<Token>,
}

/// Which event log the service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogKind {
    /// Segment files in `storage.data-dir/log` (one process, one machine).
    Embedded,
    /// An Apache Kafka topic shared by a consumer group.
    Kafka,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Log {
    /// `embedded` or `kafka`.
    pub kind: LogKind,
    /// Settings used when `kind = "kafka"`.
    pub kafka: Kafka,
}

/// `[log.kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Kafka {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic of ticket events (key = ticket id).
    pub topic: String,
    /// Consumer group the replicas join to elect, per partition, the sender of webhook alerts.
    pub group: String,
    /// Topic that receives records which could not be projected.
    pub dead_letter_topic: String,
    /// Create the topics at start-up when they do not exist.
    pub create_topics: bool,
    /// Partitions of a topic created by deskwatch.
    pub partitions: u32,
    /// Replication factor of a topic created by deskwatch.
    pub replication_factor: u32,
    /// `/readyz` fails while the summed lag of the owned partitions exceeds this many records.
    pub ready_max_lag: u64,
    /// How long a produced event may wait for the broker's acknowledgement.
    pub delivery_timeout_ms: u64,
    /// librdkafka properties passed through to every client (SASL, TLS, timeouts…). A value
    /// `env:NAME` is read from the environment variable NAME.
    pub properties: std::collections::BTreeMap<String, Secret>,
    /// librdkafka properties for the consumer only (session.timeout.ms, fetch sizes…).
    pub consumer_properties: std::collections::BTreeMap<String, Secret>,
    /// librdkafka properties for the producers only (linger.ms, compression.type…).
    pub producer_properties: std::collections::BTreeMap<String, Secret>,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// HTTP server.
    pub server: Server,
    /// Storage.
    pub storage: Storage,
    /// Event log.
    pub log: Log,
    /// Authentication.
    pub auth: Auth,
    /// SLA policies, calendars and alerting.
    pub sla: crate::sla::SlaConfig,
    /// Recurring-issue detection.
    pub recurring: crate::recurring::view::RecurringConfig,
    /// Staffing and cost model.
    pub cost: crate::staffing::model::CostConfig,
    /// What SQL queries may use.
    pub query: crate::query::QueryConfig,
    /// Live sources: help desks followed as they work.
    #[serde(default)]
    pub sources: Vec<crate::source::SourceConfig>,
}

/// An `[sla]` section from TOML text (written without the `sla.` prefix), on top of the
/// built-in `[sla]` defaults: what is not given (alert settings, the 24x7 calendar…) is theirs.
pub fn sla_from_toml(text: &str) -> Result<crate::sla::SlaConfig, ConfigError> {
    Figment::from(Toml::string(DEFAULTS))
        .focus("sla")
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| ConfigError::Parse(e.to_string()))
}

impl Config {
    /// SLA rules and text clustering settings, what projections are built under.
    pub fn setup(&self) -> crate::projection::Setup {
        crate::projection::Setup {
            rules: self.sla_rules(),
            text: std::sync::Arc::new(
                crate::clustering::state::TextSetup::new(
                    self.recurring.similarity,
                    self.recurring.glossary.clone(),
                )
                .with_window_days(self.recurring.text_window_days()),
            ),
        }
    }

    /// The compiled SLA rules (valid: [`Config::load`] checked them).
    pub fn sla_rules(&self) -> std::sync::Arc<crate::sla::Rules> {
        std::sync::Arc::new(
            crate::sla::Rules::compile(&self.sla).unwrap_or_else(|_| crate::sla::Rules::none()),
        )
    }

    /// Loads defaults, then `file` if given, then `DESKWATCH__*` variables; validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(
            Env::prefixed("DESKWATCH__")
                .map(|k| k.as_str().replace("__", ".").replace('_', "-").into()),
        );
        Config::extract(figment)
    }

    /// The defaults overridden by TOML `text` (no environment): another configuration to
    /// compare with, as `POST /v1/replay` takes it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::extract(Figment::from(Toml::string(DEFAULTS)).merge(Toml::string(text)))
    }

    fn extract(figment: Figment) -> Result<Config, ConfigError> {
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        for (i, t) in config.auth.tokens.iter_mut().enumerate() {
            read_env(&mut t.token, format!("auth.tokens[{i}].token"))?;
        }
        for (i, s) in config.sources.iter_mut().enumerate() {
            for (name, secret) in [
                ("token", &mut s.token),
                ("password", &mut s.password),
                ("secret", &mut s.secret),
            ] {
                if let Some(secret) = secret {
                    read_env(secret, format!("sources[{i}].{name}"))?;
                }
            }
        }
        crate::source::resolve(&mut config.sources).map_err(|e| ConfigError::Invalid {
            key: e.key,
            problem: e.problem,
        })?;
        config.validate()?;
        // The recurring view costs handle time at the cost model's rate unless told otherwise.
        if config.recurring.hourly_rate.is_none() {
            config.recurring.hourly_rate = Some(config.cost.hourly_rate());
        }
        Ok(config)
    }

    /// Refuses to serve a non-loopback address without tokens unless told so explicitly.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        let ip = self.server.listen.ip();
        if ip.is_loopback() || !self.auth.tokens.is_empty() || self.server.insecure_no_auth {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            key: "server.listen".into(),
            problem: format!(
                "is {}, reachable from other machines, and no [auth] tokens are configured: \
                 anyone who reaches the port could ingest, query and replay. Add tokens \
                 ([[auth.tokens]] with name, token and roles; `token = \"env:NAME\"` reads it \
                 from the environment), listen on 127.0.0.1, or start with --insecure-no-auth \
                 (server.insecure-no-auth = true) to accept the risk",
                self.server.listen
            ),
        })
    }

    /// Checks values the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                problem: problem.into(),
            })
        };
        if self.server.body_limit_bytes < 1024 {
            return invalid("server.body-limit-bytes", "must be at least 1024");
        }
        if self.server.request_timeout_seconds == 0 {
            return invalid("server.request-timeout-seconds", "must be at least 1");
        }
        if self.storage.checkpoint_interval_seconds == 0 {
            return invalid("storage.checkpoint-interval-seconds", "must be at least 1");
        }
        if self.storage.checkpoint_every_events == 0 {
            return invalid("storage.checkpoint-every-events", "must be at least 1");
        }
        if let Err((key, problem)) = self.query.validate() {
            return Err(ConfigError::Invalid { key, problem });
        }
        if self.query.timeout_seconds >= self.server.request_timeout_seconds {
            return invalid(
                "query.timeout-seconds",
                "must be less than server.request-timeout-seconds, so that a cancelled query is answered with its reason",
            );
        }
        if let Err((key, problem)) = self.recurring.validate() {
            return Err(ConfigError::Invalid { key, problem });
        }
        if let Err((key, problem)) = self.cost.validate() {
            return Err(ConfigError::Invalid { key, problem });
        }
        if let Some((channel, calendar)) = self
            .cost
            .open_hours
            .iter()
            .find(|(_, c)| !self.sla.calendars.contains_key(c.as_str()))
        {
            return invalid(
                &format!("cost.open-hours.{channel}"),
                &format!("`{calendar}` is not a calendar in sla.calendars"),
            );
        }
        if self.log.kind == LogKind::Kafka {
            self.log.kafka.validate()?;
        }
        crate::sla::Rules::compile(&self.sla).map_err(|e| ConfigError::Invalid {
            key: e.key,
            problem: e.problem,
        })?;
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if t.token.expose().len() < 16 {
                return invalid(
                    &format!("auth.tokens[{i}].token"),
                    "must be at least 16 characters",
                );
            }
            if t.roles.is_empty() {
                return invalid(&format!("auth.tokens[{i}].roles"), "must name a role");
            }
        }
        Ok(())
    }
}

impl Kafka {
    /// Checks `[log.kafka]`; the error names the key.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                problem: problem.into(),
            })
        };
        let k = self;
        if k.brokers.trim().is_empty() {
            return invalid("log.kafka.brokers", "must name at least one broker");
        }
        for (key, value) in [
            ("log.kafka.topic", &k.topic),
            ("log.kafka.group", &k.group),
            ("log.kafka.dead-letter-topic", &k.dead_letter_topic),
        ] {
            if value.is_empty()
                || value.len() > 249
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return invalid(key, "must be 1-249 characters of [a-zA-Z0-9._-]");
            }
        }
        if k.topic == k.dead_letter_topic {
            return invalid(
                "log.kafka.dead-letter-topic",
                "must differ from log.kafka.topic",
            );
        }
        if k.partitions == 0 {
            return invalid("log.kafka.partitions", "must be at least 1");
        }
        if k.replication_factor == 0 {
            return invalid("log.kafka.replication-factor", "must be at least 1");
        }
        if k.delivery_timeout_ms < 1000 {
            return invalid("log.kafka.delivery-timeout-ms", "must be at least 1000");
        }
        for (name, value) in k
            .properties
            .iter()
            .chain(&k.consumer_properties)
            .chain(&k.producer_properties)
        {
            if let Some(var) = value.expose().strip_prefix("env:")
                && std::env::var(var).is_err()
            {
                return invalid(
                    &format!("log.kafka.properties.\"{name}\""),
                    &format!("reads environment variable {var}, which is not set"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Config::load` while no other test's `figment::Jail` has the process environment
    /// changed (a Jail holds a global lock for as long as it runs).
    #[allow(clippy::result_large_err)]
    fn load_outside_jail(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut out = None;
        figment::Jail::expect_with(|_| {
            out = Some(Config::load(path));
            Ok(())
        });
        out.expect("the jail ran")
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn defaults_file_and_env_layer_and_unknown_keys_fail() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "d.toml",
                "[server]\nlisten = \"127.0.0.1:9999\"\n[[auth.tokens]]\nname = \"bot\"\ntoken = \"0123456789abcdef\"\nroles = [\"ingest\"]\n",
            )?;
            jail.set_env("DESKWATCH__STORAGE__CHECKPOINT_EVERY_EVENTS", "42");
            let c = Config::load(Some(Path::new("d.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.server.listen.port(), 9999);
            assert_eq!(c.storage.checkpoint_every_events, 42);
            assert_eq!(format!("{:?}", c.auth.tokens[0].token), "***");
            jail.create_file("bad.toml", "[server]\nlisen = \"x\"\n")?;
            let e = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.to_string().contains("lisen"), "{e}");
            jail.set_env("DESKWATCH__STORAGE__CHECKPOINT_EVERY_EVENTS", "0");
            let e = Config::load(None).unwrap_err();
            assert!(
                e.to_string().contains("storage.checkpoint-every-events"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_example_loads_and_its_policies_replace_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deskwatch.example.toml");
        let c = load_outside_jail(Some(&path)).unwrap();
        let rules = crate::sla::Rules::compile(&c.sla).unwrap();
        let names: Vec<&str> = rules.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["P1", "P2", "standard"]);
        // Calendars merge by name: the built-in 24x7 and the example's office.
        let cals: Vec<&str> = rules.calendars.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cals, ["24x7", "office"]);
        assert_eq!(rules.policies[2].warnings, [75, 90]);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn recurring_defaults_match_the_code_and_the_example_overrides_them() {
        let c = load_outside_jail(None).unwrap();
        assert_eq!(
            c.recurring.view(),
            crate::recurring::view::ViewSettings::default()
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deskwatch.example.toml");
        let e = load_outside_jail(Some(&path)).unwrap();
        assert_eq!(e.recurring.view().fields.len(), 3);
        assert!(e.recurring.alerts);
        assert_eq!(e.recurring.hourly_rate, Some(41.39), "set explicitly");
        assert_eq!(
            (e.cost.msp_pricing.as_str(), e.cost.msp_users),
            ("user-month", 4000.0)
        );
        // Unset, the hourly rate follows the cost model.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[cost]\nannual-salary = 52000.0\nload-factor = 1.4\n",
            )?;
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert!((c.recurring.view().hourly_rate - 35.0).abs() < 1e-9);
            Ok(())
        });
        assert_ne!(
            e.setup().text.fingerprint(),
            c.setup().text.fingerprint(),
            "a glossary change replays the clusters"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn bad_recurring_config_is_refused_naming_the_key() {
        for (text, key) in [
            ("[recurring]\nwindow = \"7y\"\n", "recurring.window"),
            ("[recurring]\nsimilarity = 1.5\n", "recurring.similarity"),
            ("[recurring]\nfingerprint = []\n", "recurring.fingerprint"),
            ("[recurring]\ntop-k = 1000\n", "recurring.top-k"),
            ("[recurring]\nfingerprint = [\"colour\"]\n", "colour"),
            (
                "[cost]\nrealtime-channels = [\"fax\"]\n",
                "cost.realtime-channels",
            ),
            (
                "[cost]\ndeferred-service-level = 1.0\n",
                "cost.deferred-service-level",
            ),
            ("[cost]\nmsp-pricing = \"barter\"\n", "cost.msp-pricing"),
            ("[cost]\nrefresh-seconds = 0\n", "cost.refresh-seconds"),
            ("[query]\nmax-rows = 0\n", "query.max-rows"),
            ("[query]\nmemory-limit = \"12 parsecs\"\n", "parsecs"),
            ("[query]\nmemory-limit = \"1MiB\"\n", "query.memory-limit"),
            ("[query]\ntimeout-seconds = 60\n", "query.timeout-seconds"),
            ("[query]\nmax-concurrent = 0\n", "query.max-concurrent"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.create_file("r.toml", text)?;
                let e = Config::load(Some(Path::new("r.toml"))).unwrap_err();
                assert!(e.to_string().contains(key), "{text}: {e}");
                Ok(())
            });
        }
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn tokens_come_from_the_environment_and_a_public_address_needs_them() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[server]\nlisten = \"0.0.0.0:8080\"\n[[auth.tokens]]\nname = \"admin\"\ntoken = \"env:DW_TEST_TOKEN\"\nroles = [\"admin\"]\n",
            )?;
            let e = Config::load(Some(Path::new("t.toml"))).unwrap_err();
            assert!(e.to_string().contains("auth.tokens[0].token"), "{e}");
            assert!(e.to_string().contains("DW_TEST_TOKEN"), "{e}");
            jail.set_env("DW_TEST_TOKEN", "0123456789abcdef-from-env");
            let c = Config::load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.auth.tokens[0].token.expose(), "0123456789abcdef-from-env");
            assert!(
                c.check_exposure().is_ok(),
                "tokens: a public address is fine"
            );
            // No tokens: loopback is fine, a public address is refused unless told so.
            let mut open = Config::load(None).map_err(|e| e.to_string())?;
            assert!(open.check_exposure().is_ok());
            open.server.listen = "0.0.0.0:8080".parse().unwrap();
            let e = open.check_exposure().unwrap_err().to_string();
            assert!(
                e.contains("--insecure-no-auth") && e.contains("auth.tokens"),
                "{e}"
            );
            open.server.insecure_no_auth = true;
            assert!(open.check_exposure().is_ok());
            Ok(())
        });
    }

    #[test]
    fn sizes_parse_with_units() {
        use crate::query::ByteSize;
        for (text, bytes) in [
            ("auto", None),
            ("512MiB", Some(512 << 20)),
            ("4GiB", Some(4u64 << 30)),
            ("100MB", Some(100_000_000)),
            ("1024", Some(1024)),
            ("0", Some(0)),
        ] {
            let parsed: ByteSize = text.parse().unwrap();
            match bytes {
                None => assert_eq!(parsed, ByteSize::Auto),
                Some(b) => assert_eq!(parsed, ByteSize::Bytes(b), "{text}"),
            }
        }
        assert!("4 furlongs".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
        let q = crate::query::QueryConfig::default();
        assert!(q.memory_limit_bytes() >= 64 << 20);
        assert!(q.memory_limit_bytes() <= crate::query::available_memory());
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn bad_sla_config_is_refused_at_start_up_naming_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "[sla.calendars.office]\ntime-zone = \"Mars/Olympus\"\nhours = { weekdays = [\"09:00-17:00\"] }\n",
            )?;
            let e = Config::load(Some(Path::new("s.toml"))).unwrap_err();
            assert!(
                e.to_string().contains("sla.calendars.office.time-zone"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_cost_hours_are_refused_naming_the_key() {
        for (text, key) in [
            (
                "[cost]\nopen-hours = { phone = \"office\" }\n",
                "cost.open-hours.phone",
            ),
            (
                "[cost]\nopen-hours = { fax = \"24x7\" }\n",
                "cost.open-hours",
            ),
            (
                "[cost]\nchannel-default-aht-seconds = { chat = 0.0 }\n",
                "cost.channel-default-aht-seconds.chat",
            ),
            (
                "[cost]\nplausible-cost-per-ticket = [60.0, 5.0]\n",
                "cost.plausible-cost-per-ticket",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let ok = Config::from_toml("[cost]\nopen-hours = { phone = \"24x7\" }\n").unwrap();
        assert_eq!(ok.cost.open_hours["phone"], "24x7");
    }
}
