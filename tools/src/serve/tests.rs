//! Resolution of `serve`'s settings: precedence over all four sources, errors that name the key and
//! where its value came from, Kafka's server.properties, and the engine config built from it.

use std::collections::HashMap;
use std::path::Path;

use clap::Parser;
use ringbroker_engine::config::{
    DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_LOG_CLEANER_INTERVAL_MS, DEFAULT_LOG_RETENTION_BYTES,
    DEFAULT_LOG_RETENTION_MS, DEFAULT_METRICS_LISTEN,
};
use ringbroker_tuning::Provenance;

use super::*;

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    args: ServeArgs,
}

fn flags(line: &[&str]) -> ServeArgs {
    let mut argv = vec!["serve"];
    argv.extend(line);
    Command::try_parse_from(argv).unwrap().args
}

fn resolve_with(args: &ServeArgs, env: &[(&str, &str)]) -> Result<Resolved, SettingsError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Resolved::load(args, &move |name: &str| env.get(name).cloned())
}

/// A config file in a temporary directory; the data dir points there too.
fn config(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

/// The error of resolving a config file holding `text`.
fn error_for_file(text: &str) -> String {
    let (_dir, path) = config("r.toml", text);
    resolve_with(&flags(&["--config", &path]), &[])
        .unwrap_err()
        .to_string()
}

fn row(resolved: &Resolved, key: &str) -> (String, Provenance) {
    let rows = resolved.rows();
    let found = rows.iter().find(|row| row.key == key).unwrap();
    (found.value.clone(), found.source)
}

#[test]
fn defaults_are_the_engine_defaults() {
    let resolved = resolve_with(&ServeArgs::default(), &[]).unwrap();
    let settings = &resolved.settings;
    assert_eq!(
        resolved.listeners.primary().address.to_string(),
        DEFAULT_LISTEN
    );
    assert_eq!(settings.data_dir.value.0, Path::new(DEFAULT_DATA_DIR));
    assert_eq!(
        settings
            .metrics_listen
            .value
            .0
            .map(|a| a.to_string())
            .as_deref(),
        Some(DEFAULT_METRICS_LISTEN)
    );
    assert_eq!(settings.log_retention_ms.value.0, DEFAULT_LOG_RETENTION_MS);
    assert_eq!(
        settings.log_retention_bytes.value.0,
        DEFAULT_LOG_RETENTION_BYTES
    );
    assert!(resolved
        .rows()
        .iter()
        .all(|row| row.source == Provenance::Default));
    let config = resolved.broker_config().unwrap();
    assert_eq!(
        config.live.log_cleaner_interval_ms(),
        DEFAULT_LOG_CLEANER_INTERVAL_MS
    );
    assert_eq!(config.default_partitions, 1);
    assert!(config.auto_create_topics);
    assert_eq!(config.advertised_host, "127.0.0.1");
}

#[test]
fn flag_over_environment_over_file_over_default() {
    let (dir, path) = config(
        "ringbroker.toml",
        "num.partitions = 3\nlog_filter = \"debug\"\nnode.id = 7\nflush_policy = \"always\"\n\
         socket.request.max.bytes = \"64MiB\"\nlog.retention.hours = 1\n",
    );
    let data = dir.path().join("data").display().to_string();
    let args = flags(&[
        "--config",
        &path,
        "--default-partitions",
        "5",
        "--set",
        "flush_policy=never",
        "--data-dir",
        &data,
    ]);
    let env = [
        ("RINGBROKER_NUM_PARTITIONS", "4"),
        ("RINGBROKER_LOG_FILTER", "warn"),
        ("RINGBROKER_FLUSH_POLICY", "10"),
        ("RINGBROKER_SOCKET_REQUEST_MAX_BYTES", "32MiB"),
    ];
    let resolved = resolve_with(&args, &env).unwrap();
    assert_eq!(
        row(&resolved, "num.partitions"),
        ("5".into(), Provenance::Flag)
    );
    assert_eq!(
        row(&resolved, "log_filter"),
        ("warn".into(), Provenance::Env)
    );
    assert_eq!(row(&resolved, "node.id"), ("7".into(), Provenance::File));
    assert_eq!(
        row(&resolved, "log.retention.ms"),
        ("3600000".into(), Provenance::File)
    );
    assert_eq!(row(&resolved, "listeners").1, Provenance::Default);
    assert_eq!(
        row(&resolved, "flush_policy"),
        ("never".into(), Provenance::Flag)
    );
    assert_eq!(
        row(&resolved, "socket.request.max.bytes"),
        ("32 MiB".into(), Provenance::Env)
    );
    let printed = resolved
        .rows()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert!(printed.contains(&"log_filter = warn (env RINGBROKER_LOG_FILTER)".to_string()));
    let config = resolved.broker_config().unwrap();
    assert_eq!(config.default_partitions, 5);
    assert_eq!(config.node_id, 7);
    assert_eq!(config.max_request_bytes, 32 << 20);
    assert_eq!(config.live.log_retention_ms(), 3_600_000);
    // Without the flag and the variable, the file decides.
    let args = flags(&["--config", &path, "--data-dir", &data]);
    let resolved = resolve_with(&args, &[]).unwrap();
    assert_eq!(
        row(&resolved, "num.partitions"),
        ("3".into(), Provenance::File)
    );
    assert_eq!(
        row(&resolved, "flush_policy"),
        ("always".into(), Provenance::File)
    );
    // The config file may also come from the environment.
    let resolved = resolve_with(&ServeArgs::default(), &[(CONFIG_ENV, path.as_str())]).unwrap();
    assert_eq!(
        row(&resolved, "num.partitions"),
        ("3".into(), Provenance::File)
    );
}

#[test]
fn unknown_toml_keys_are_errors_naming_the_closest_known_key() {
    let error = error_for_file("num.partition = 3\n");
    assert!(error.contains("unknown key `num.partition`"), "{error}");
    assert!(error.contains("did you mean `num.partitions`?"), "{error}");
    let error = error_for_file("completely.different.thing = 1\n");
    assert!(error.contains("the closest known key is `"), "{error}");
    // A tuning key under its profile name where the file uses Kafka's.
    let error = error_for_file("max_request_bytes = 1048576\n");
    assert!(error.contains("`socket.request.max.bytes`"), "{error}");
}

#[test]
fn bad_values_name_the_key_and_where_they_came_from() {
    let error = resolve_with(&ServeArgs::default(), &[("RINGBROKER_NUM_PARTITIONS", "0")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("environment RINGBROKER_NUM_PARTITIONS"),
        "{error}"
    );
    assert!(error.contains("`num.partitions` = 0"), "{error}");
    let (_dir, path) = config("r.toml", "log.dirs = \"/a,/b\"\n");
    let error = resolve_with(&flags(&["--config", &path]), &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("config file {path}")), "{error}");
    assert!(error.contains("one data directory"), "{error}");
    let error = error_for_file("log.segment.bytes = 5\n");
    assert!(error.contains("segment_bytes"), "{error}");
    assert!(
        error.contains("`log.segment.bytes` is the config-file name"),
        "{error}"
    );
    assert!(flags(&[]).sources.config.is_none());
    assert!(Command::try_parse_from(["serve", "--shards", "0"]).is_err());
}

#[test]
fn kafka_server_properties_start_a_broker() {
    let text = include_str!("../../tests/fixtures/kafka-server.properties");
    let (dir, path) = config("server.properties", text);
    let data = dir.path().join("data").display().to_string();
    let resolved = resolve_with(&flags(&["--config", &path, "--data-dir", &data]), &[]).unwrap();
    assert_eq!(
        resolved.listeners.primary().address.to_string(),
        "0.0.0.0:9092"
    );
    assert_eq!(row(&resolved, "node.id"), ("1".into(), Provenance::File));
    assert_eq!(
        row(&resolved, "log.retention.ms"),
        ("604800000".into(), Provenance::File)
    );
    assert_eq!(row(&resolved, "socket.send.buffer.bytes").0, "100 KiB");
    let config = resolved.broker_config().unwrap();
    assert_eq!(config.advertised_host, "localhost");
    assert_eq!(config.advertised_port, 9092);
    let unused: Vec<&String> = resolved
        .warnings
        .iter()
        .filter(|w| w.contains("settings ringbroker does not use"))
        .collect();
    assert_eq!(unused.len(), 1, "one warning line: {:?}", resolved.warnings);
    for key in ["num.network.threads", "log.retention.check.interval.ms"] {
        assert!(unused[0].contains(key), "{key} in {}", unused[0]);
    }
    assert!(!unused[0].contains("log.retention.hours"), "{}", unused[0]);
    // Kafka's quick-start file asks for one replica of the internal topics: a setting we take.
    assert!(
        !unused[0].contains("offsets.topic.replication.factor"),
        "{}",
        unused[0]
    );
    assert_eq!(
        row(&resolved, "offsets.topic.replication.factor"),
        ("1".into(), Provenance::File)
    );
    assert!(
        resolved
            .warnings
            .iter()
            .any(|w| w.contains("not serving CONTROLLER://:9093")),
        "{:?}",
        resolved.warnings
    );
}

#[test]
fn properties_typos_are_pointed_out() {
    let (_dir, path) = config("s.properties", "num.partition=3\nnum.io.threads=8\n");
    let resolved = resolve_with(&flags(&["--config", &path]), &[]).unwrap();
    let line = resolved
        .warnings
        .iter()
        .find(|w| w.contains("does not use"))
        .unwrap();
    assert!(
        line.contains("num.partition (did you mean num.partitions?)"),
        "{line}"
    );
    assert!(line.contains("num.io.threads"), "{line}");
}

#[test]
fn the_packaged_config_file_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/ringbroker.toml");
    let resolved = resolve_with(&flags(&["--config", path]), &[]).unwrap();
    assert_eq!(
        resolved.settings.data_dir.value.0,
        Path::new("/var/lib/ringbroker")
    );
    assert!(resolved.broker_config().is_ok());
}

#[test]
fn listener_flags_add_secure_listeners_to_listen() {
    use ringbroker_engine::security::{SaslMechanism, SecurityProtocol};
    let resolved = resolve_with(
        &flags(&[
            "--listen",
            "127.0.0.1:9092",
            "--listener",
            "sasl_plaintext://127.0.0.1:9095",
            "--advertised-listener",
            "broker1.example:19092",
            "--sasl-mechanisms",
            "PLAIN,SCRAM-SHA-512",
            "--add-scram",
            "SCRAM-SHA-512=[name=admin,password=admin-secret]",
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(
        row(&resolved, "listeners"),
        (
            "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9095".into(),
            Provenance::Flag
        )
    );
    // The password is not printed with the settings.
    assert!(!row(&resolved, "add.scram").0.contains("secret"));
    let config = resolved.broker_config().unwrap();
    let listeners = config.client_listeners();
    let summary: Vec<(SecurityProtocol, String, u16)> = listeners
        .iter()
        .map(|l| (l.protocol, l.advertised_host.clone(), l.advertised_port))
        .collect();
    assert_eq!(
        summary,
        [
            (SecurityProtocol::Plaintext, "broker1.example".into(), 19092),
            (
                SecurityProtocol::SaslPlaintext,
                "broker1.example".into(),
                9095
            ),
        ]
    );
    assert_eq!(
        config.security.sasl_mechanisms,
        [SaslMechanism::Plain, SaslMechanism::ScramSha512]
    );
    assert!(!config.security.credentials.bootstrap().is_empty());
    assert!(config.security.tls.is_none());
    // A listener is named by its protocol, and names are unique (Kafka refuses the same).
    let twice = resolve_with(
        &flags(&[
            "--listen",
            "127.0.0.1:9092",
            "--listener",
            "SASL_PLAINTEXT://127.0.0.1:9095",
            "--listener",
            "SASL_PLAINTEXT://127.0.0.1:9096",
        ]),
        &[],
    );
    let Err(error) = twice else {
        panic!("two listeners of one name were accepted");
    };
    let error = error.to_string();
    assert!(
        error.contains("two listeners named SASL_PLAINTEXT"),
        "{error}"
    );
}

/// The flags of node 1 of a two-voter cluster, then `more`.
fn cluster_flags(more: &[&str]) -> ServeArgs {
    let mut line = vec![
        "--node-id",
        "1",
        "--controller-quorum-voters",
        "1@127.0.0.1:9093,2@127.0.0.2:9093",
        "--controller-listen",
        "127.0.0.1:9093",
    ];
    line.extend(more);
    flags(&line)
}

/// The test certificates of `fuzz/certs` (CN=localhost, valid until 2036).
fn test_cert(name: &str) -> String {
    format!("{}/../fuzz/certs/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_inter_broker_listener_is_plaintext_unless_named() {
    use ringbroker_engine::security::SecurityProtocol;
    let listener_of = |more: &[&str]| {
        resolve_with(&cluster_flags(more), &[])
            .and_then(|resolved| resolved.broker_config())
            .map(|config| config.security.inter_broker.protocol)
            .map_err(|e| e.to_string())
    };
    // Kafka's default, whatever the order of the listeners.
    let both = "SASL_PLAINTEXT://127.0.0.1:9095,PLAINTEXT://127.0.0.1:9092";
    assert_eq!(
        listener_of(&["--listen", both]),
        Ok(SecurityProtocol::Plaintext)
    );
    // A cluster without a PLAINTEXT listener must name one.
    let error = listener_of(&["--listen", "SASL_PLAINTEXT://127.0.0.1:9095"]).unwrap_err();
    assert!(error.contains("inter.broker.listener.name"), "{error}");
    // A single node without one connects to nobody: its first listener does.
    let single = resolve_with(
        &flags(&["--listen", "SASL_PLAINTEXT://127.0.0.1:9095"]),
        &[],
    )
    .unwrap()
    .broker_config()
    .unwrap();
    assert_eq!(
        single.security.inter_broker.protocol,
        SecurityProtocol::SaslPlaintext
    );
    // Kafka's older setting names it by protocol; both at once is refused, as Kafka does.
    let named = ["--listen", both, "--inter-broker-sasl-username", "broker"];
    let error = listener_of(
        &[
            &named[..],
            &["--security-inter-broker-protocol", "SASL_PLAINTEXT"],
        ]
        .concat(),
    )
    .unwrap_err();
    assert!(error.contains("inter.broker.sasl.password"), "{error}");
    let error = listener_of(
        &[
            &named[..],
            &[
                "--security-inter-broker-protocol",
                "SASL_PLAINTEXT",
                "--inter-broker-listener-name",
                "SASL_PLAINTEXT",
            ],
        ]
        .concat(),
    )
    .unwrap_err();
    assert!(error.contains("only one of"), "{error}");
    // The listener must be one of the broker's.
    let error =
        listener_of(&["--listen", both, "--inter-broker-listener-name", "SSL"]).unwrap_err();
    assert!(error.contains("SSL"), "{error}");
}

#[test]
fn named_listeners_take_their_protocols_from_the_map() {
    use ringbroker_engine::security::SecurityProtocol;
    let resolved = resolve_with(
        &cluster_flags(&[
            "--listener",
            "CLIENT://127.0.0.1:9094",
            "--listener",
            "REPLICATION://127.0.0.1:9095",
            "--listener-security-protocol-map",
            "CLIENT:SASL_PLAINTEXT,REPLICATION:PLAINTEXT",
            "--inter-broker-listener-name",
            "replication",
        ]),
        &[],
    )
    .unwrap();
    let config = resolved.broker_config().unwrap();
    let listeners: Vec<(String, SecurityProtocol, u16)> = config
        .client_listeners()
        .iter()
        .map(|l| (l.name.clone(), l.protocol, l.address.port()))
        .collect();
    assert_eq!(
        listeners,
        [
            ("CLIENT".into(), SecurityProtocol::SaslPlaintext, 9094),
            ("REPLICATION".into(), SecurityProtocol::Plaintext, 9095),
        ]
    );
    let inter_broker = &config.security.inter_broker;
    assert_eq!(
        (inter_broker.listener_name(), inter_broker.protocol),
        ("REPLICATION", SecurityProtocol::Plaintext)
    );
    assert_eq!(
        row(&resolved, "listener.security.protocol.map").0,
        "CLIENT:SASL_PLAINTEXT,REPLICATION:PLAINTEXT"
    );
    // security.inter.broker.protocol names the listener of the protocol's name, as in Kafka:
    // here there is none.
    let error = resolve_with(
        &cluster_flags(&[
            "--listener",
            "CLIENT://127.0.0.1:9094",
            "--listener-security-protocol-map",
            "CLIENT:PLAINTEXT",
            "--security-inter-broker-protocol",
            "PLAINTEXT",
        ]),
        &[],
    )
    .and_then(|resolved| resolved.broker_config())
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("the inter-broker listener is PLAINTEXT"),
        "{error}"
    );
    // An unmapped name stops the start, naming the listener and the key.
    let error = resolve_with(&flags(&["--listener", "CLIENT://127.0.0.1:9094"]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        error
            .contains("listener CLIENT has no security protocol in listener.security.protocol.map"),
        "{error}"
    );
}

#[test]
fn tls_protocols_and_cipher_suites_reach_both_sides_of_tls() {
    use ringbroker_engine::security::tls_policy::{CipherSuite, TlsVersion};
    let tls_flags = |more: &[&str]| {
        let mut line = vec![
            "--listener".to_string(),
            "SSL://127.0.0.1:9093".to_string(),
            "--ssl-cert".to_string(),
            test_cert("server.pem"),
            "--ssl-key".to_string(),
            test_cert("server.key"),
            "--inter-broker-ssl-ca-file".to_string(),
            test_cert("ca.pem"),
        ];
        line.extend(more.iter().map(|s| s.to_string()));
        line
    };
    let resolve_tls = |more: &[&str], env: &[(&str, &str)]| {
        let line = tls_flags(more);
        let line: Vec<&str> = line.iter().map(String::as_str).collect();
        resolve_with(&flags(&line), env)
    };
    let defaults = resolve_tls(&[], &[]).unwrap();
    assert_eq!(row(&defaults, "ssl.enabled.protocols").0, "TLSv1.2,TLSv1.3");
    assert_eq!(row(&defaults, "ssl.cipher.suites").0, "");
    let resolved = resolve_tls(
        &["--ssl-enabled-protocols", "TLSv1.3"],
        &[(
            "RINGBROKER_SSL_CIPHER_SUITES",
            "TLS_AES_128_GCM_SHA256,TLS_CHACHA20_POLY1305_SHA256",
        )],
    )
    .unwrap();
    let files = resolved.tls_files().unwrap().unwrap();
    assert_eq!(files.policy.protocols, [TlsVersion::Tls13]);
    assert_eq!(
        files.policy.cipher_suites,
        [
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        ]
    );
    let client = resolved.inter_broker_tls_files().unwrap().unwrap();
    assert_eq!(client.policy, files.policy);
    assert!(resolved.broker_config().unwrap().security.tls.is_some());
    // Unknown names stop the start, naming the key, the value and the name.
    let error = resolve_tls(
        &[],
        &[("RINGBROKER_SSL_ENABLED_PROTOCOLS", "TLSv1.3,TLSv1.4")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("ssl.enabled.protocols") && error.contains("`TLSv1.4`"),
        "{error}"
    );
    let (_dir, path) = config(
        "server.properties",
        "ssl.cipher.suites=TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n",
    );
    let error = resolve_tls(&["--config", &path], &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ssl.cipher.suites")
            && error.contains("`TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA`"),
        "{error}"
    );
    // Suites that no enabled protocol can use stop the start too.
    let error = resolve_tls(
        &[
            "--ssl-enabled-protocols",
            "TLSv1.2",
            "--ssl-cipher-suites",
            "TLS_AES_128_GCM_SHA256",
        ],
        &[],
    )
    .and_then(|resolved| resolved.broker_config())
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("works with the enabled protocols TLSv1.2"),
        "{error}"
    );
}

#[test]
fn a_sasl_ssl_inter_broker_listener_needs_a_ca_and_a_login() {
    use ringbroker_engine::security::{SaslMechanism, SecurityProtocol};
    let base = [
        "--listener",
        "SASL_SSL://127.0.0.1:9094",
        "--ssl-cert",
        &test_cert("server.pem"),
        "--ssl-key",
        &test_cert("server.key"),
        "--sasl-mechanisms",
        "SCRAM-SHA-512,PLAIN",
        "--inter-broker-listener-name",
        "sasl_ssl",
    ]
    .map(String::from);
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    let config_of = |more: &[&str], env: &[(&str, &str)]| {
        resolve_with(&cluster_flags(&[&base[..], more].concat()), env)
            .and_then(|resolved| resolved.broker_config())
            .map_err(|e| e.to_string())
    };
    let ca = test_cert("ca.pem");
    let login = ["--inter-broker-sasl-username", "broker"];
    let error = config_of(&login, &[("RINGBROKER_INTER_BROKER_SASL_PASSWORD", "pw")]).unwrap_err();
    assert!(error.contains("inter.broker.ssl.ca.file"), "{error}");
    let error = config_of(&["--inter-broker-ssl-ca-file", &ca], &[]).unwrap_err();
    assert!(error.contains("inter.broker.sasl.username"), "{error}");

    let with_ca = [&login[..], &["--inter-broker-ssl-ca-file", &ca]].concat();
    let resolved = resolve_with(
        &cluster_flags(&[&base[..], &with_ca].concat()),
        &[("RINGBROKER_INTER_BROKER_SASL_PASSWORD", "hunter2")],
    )
    .unwrap();
    // The password is never printed with the settings.
    assert_eq!(
        row(&resolved, "inter.broker.sasl.password"),
        ("(set)".into(), Provenance::Env)
    );
    let inter_broker = resolved.broker_config().unwrap().security.inter_broker;
    assert_eq!(inter_broker.protocol, SecurityProtocol::SaslSsl);
    assert_eq!(inter_broker.listener_name(), "SASL_SSL");
    assert!(inter_broker.tls.is_some());
    let sasl = inter_broker.sasl.unwrap();
    // Without sasl.mechanism.inter.broker.protocol: the first enabled mechanism.
    assert_eq!(
        (
            sasl.mechanism,
            sasl.username.as_str(),
            sasl.password.as_str()
        ),
        (SaslMechanism::ScramSha512, "broker", "hunter2")
    );
    assert!(!format!("{sasl:?}").contains("hunter2"));
    let plain = config_of(
        &[
            &with_ca[..],
            &["--sasl-mechanism-inter-broker-protocol", "PLAIN"],
        ]
        .concat(),
        &[("RINGBROKER_INTER_BROKER_SASL_PASSWORD", "pw")],
    )
    .unwrap();
    assert_eq!(
        plain.security.inter_broker.sasl.map(|s| s.mechanism),
        Some(SaslMechanism::Plain)
    );
    // As Kafka: the mechanism must be one the brokers enable.
    let error = config_of(
        &[
            &with_ca[..],
            &["--sasl-mechanism-inter-broker-protocol", "SCRAM-SHA-256"],
        ]
        .concat(),
        &[("RINGBROKER_INTER_BROKER_SASL_PASSWORD", "pw")],
    )
    .unwrap_err();
    assert!(error.contains("sasl.enabled.mechanisms"), "{error}");
    // A CA file that is not one names the key.
    let error = config_of(
        &[
            &login[..],
            &["--inter-broker-ssl-ca-file", "/nonexistent/ca.pem"],
        ]
        .concat(),
        &[("RINGBROKER_INTER_BROKER_SASL_PASSWORD", "pw")],
    )
    .unwrap_err();
    assert!(
        error.contains("inter.broker.ssl.ca.file") && error.contains("/nonexistent/ca.pem"),
        "{error}"
    );
}

#[test]
fn security_keys_come_from_the_config_file() {
    use ringbroker_engine::security::sasl::credentials::ScramMechanism;
    use ringbroker_engine::security::SecurityProtocol;
    let (_dir, path) = config(
        "r.toml",
        "listeners = \"SASL_PLAINTEXT://127.0.0.1:9095,PLAINTEXT://127.0.0.1:9092\"\n\
         sasl.enabled.mechanisms = \"SCRAM-SHA-256\"\n\
         add.scram = \"SCRAM-SHA-256=[name=alice,password=pw,iterations=8192]\"\n",
    );
    let resolved = resolve_with(&flags(&["--config", &path]), &[]).unwrap();
    let config = resolved.broker_config().unwrap();
    assert_eq!(
        config.security.primary_protocol,
        SecurityProtocol::SaslPlaintext
    );
    assert_eq!(config.listen.port(), 9095);
    assert_eq!(config.security.extra_listeners.len(), 1);
    let credentials = config.security.credentials.bootstrap();
    let alice = credentials.get("alice", ScramMechanism::Sha256).unwrap();
    assert_eq!(alice.iterations, 8192);
}

#[test]
fn tls_listeners_need_a_certificate_and_bad_credentials_name_the_key() {
    let resolved = resolve_with(
        &flags(&[
            "--listen",
            "127.0.0.1:9092",
            "--listener",
            "SSL://127.0.0.1:9093",
        ]),
        &[],
    )
    .unwrap();
    let error = resolved.broker_config().unwrap_err().to_string();
    assert!(error.contains("--ssl-cert"), "{error}");
    let missing = resolve_with(
        &flags(&[
            "--listener",
            "SSL://127.0.0.1:9093",
            "--ssl-cert",
            "/nonexistent/server.pem",
            "--ssl-key",
            "/nonexistent/server.key",
        ]),
        &[],
    )
    .unwrap()
    .broker_config()
    .unwrap_err()
    .to_string();
    assert!(missing.contains("/nonexistent/server.pem"), "{missing}");
    // A flag is checked by clap; the environment and the file name the key.
    let bad = resolve_with(
        &ServeArgs::default(),
        &[("RINGBROKER_ADD_SCRAM", "SCRAM-SHA-512=[name=a]")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("add.scram")
            && bad.contains("no password")
            && bad.contains("RINGBROKER_ADD_SCRAM"),
        "{bad}"
    );
    let same_port = resolve_with(
        &flags(&[
            "--listen",
            "127.0.0.1:9092",
            "--listener",
            "SSL://127.0.0.1:9092",
        ]),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(same_port.contains("own port"), "{same_port}");
}
