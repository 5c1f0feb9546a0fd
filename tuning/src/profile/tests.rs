//! Profile parsing, overrides, resolution and every error's message (it must name the key and the fix).

use super::*;

/// A machine like this one: 2 cores, 8 MiB RLIMIT_MEMLOCK.
fn small_machine() -> Machine {
    Machine {
        online_cores: vec![0, 1],
        usable_cores: vec![0, 1],
        memlock_limit_bytes: Some(8 << 20),
        nofile_limit: Some(20_000),
    }
}

fn server_machine() -> Machine {
    Machine {
        online_cores: (0..16).collect(),
        usable_cores: (0..16).collect(),
        memlock_limit_bytes: None,
        nofile_limit: Some(1 << 20),
    }
}

fn error_for(text: &str) -> ProfileError {
    match Profile::from_toml_str(text, "test.toml").and_then(|p| p.resolve_for(&small_machine())) {
        Ok(resolved) => panic!("expected an error for {text:?}, got {resolved:?}"),
        Err(err) => err,
    }
}

fn assert_names_key_and_fix(err: &ProfileError, key: &str) {
    let message = err.to_string();
    assert_eq!(err.key(), Some(key), "{message}");
    assert!(
        message.contains(&format!("`{key}`")),
        "message must name the key: {message}"
    );
    assert!(
        message.contains("fix:"),
        "message must give a fix: {message}"
    );
}

#[test]
fn builtin_default_sets_every_key_and_resolves_here() {
    let profile = Profile::builtin_default();
    for key in Key::ALL {
        assert_eq!(profile.source(key), Provenance::Default);
    }
    let resolved = profile.resolve_for(&small_machine()).unwrap();
    assert_eq!(resolved.shard_cores, vec![0, 1]);
    assert_eq!(
        resolved.io_memory_bytes,
        1 << 20,
        "8 MiB / (3 x 2) rounds down to 1 MiB"
    );
    assert!(resolved.locked_memory_needed_bytes() <= 8 << 20);
    assert_eq!(resolved.max_request_bytes, 104_857_600);
    // Also on the machine running the tests.
    Profile::builtin_default().resolve().unwrap();
}

#[test]
fn shipped_profiles_parse_and_resolve_on_their_machines() {
    let dev = Profile::from_toml_str(DEV_PROFILE_TOML, "dev.toml").unwrap();
    let dev = dev.resolve_for(&small_machine()).unwrap();
    assert_eq!(dev.shard_cores, vec![0, 1]);
    assert!(!dev.pin_executors);
    assert!(!dev.warnings.is_empty(), "dev shares bench and shard cores");

    let server =
        Profile::from_toml_str(BARE_METAL_16C_PROFILE_TOML, "bare-metal-16c.toml").unwrap();
    let server = server.resolve_for(&server_machine()).unwrap();
    assert_eq!(server.shard_cores, (2..=13).collect::<Vec<_>>());
    assert_eq!(server.bench_cores, vec![14, 15]);
    assert!(server.warnings.is_empty());
    assert_eq!(server.flush_policy, FlushPolicy::IntervalMs(5));

    // On this small machine the server profile is impossible, and says so.
    let err = Profile::from_toml_str(BARE_METAL_16C_PROFILE_TOML, "bare-metal-16c.toml")
        .unwrap()
        .resolve_for(&small_machine())
        .unwrap_err();
    assert_names_key_and_fix(&err, "shard_cores");
}

#[test]
fn connection_limits_follow_the_file_descriptor_limit() {
    // auto: the hard limit less a quarter (at least 1024, at most half) for files.
    let resolved = Profile::builtin_default()
        .resolve_for(&small_machine())
        .unwrap();
    assert_eq!(resolved.max_connections, 15_000, "20,000 less 5,000");
    assert_eq!(resolved.max_connections_per_ip, None);
    assert!(resolved.max_connections_per_ip_overrides.is_empty());
    assert_eq!(resolve::auto_max_connections(Some(4096)), 3072);
    assert_eq!(resolve::auto_max_connections(Some(1024)), 512);
    assert_eq!(resolve::auto_max_connections(Some(1 << 20)), 786_432);
    assert_eq!(resolve::auto_max_connections(None), MAX_CONNECTIONS_MAX);
    let text = resolved.to_string();
    assert!(
        text.contains("max_connections = 15000 (default; auto: RLIMIT_NOFILE 20000"),
        "{text}"
    );
    assert!(
        text.contains("max_connections_per_ip = unlimited (default)"),
        "{text}"
    );

    // A count past the descriptor limit cannot be honoured; one past auto's share is a warning.
    let err = error_for("max_connections = 50000\n");
    assert_names_key_and_fix(&err, "max_connections");
    assert!(err.to_string().contains("ulimit -Hn"), "{err}");
    let tight = Profile::from_toml_str("max_connections = 19000\n", "p.toml")
        .unwrap()
        .resolve_for(&small_machine())
        .unwrap();
    assert_eq!(tight.max_connections, 19_000);
    assert!(
        tight
            .warnings
            .iter()
            .any(|w| w.contains("1000 of the 20000")),
        "{:?}",
        tight.warnings
    );

    // Per-address limits, Kafka's format for the overrides; 0 only with overrides.
    let mut profile = Profile::builtin_default();
    profile
        .set_from_flag("max_connections_per_ip", "10")
        .unwrap();
    profile
        .set_from_flag("max_connections_per_ip_overrides", "127.0.0.1:3,[::1]:0")
        .unwrap();
    let resolved = profile.resolve_for(&small_machine()).unwrap();
    assert_eq!(resolved.max_connections_per_ip, Some(10));
    assert_eq!(resolved.max_connections_per_ip_overrides.len(), 2);
    assert!(resolved
        .to_string()
        .contains("max_connections_per_ip_overrides = \"127.0.0.1:3,[::1]:0\" (flag)"));
    let err = error_for("max_connections_per_ip = 0\n");
    assert_names_key_and_fix(&err, "max_connections_per_ip");
    let err = error_for("max_connections_per_ip_overrides = \"broker1:5\"\n");
    assert_names_key_and_fix(&err, "max_connections_per_ip_overrides");
}

#[test]
fn shipped_profile_files_load_from_disk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    for name in ["default.toml", "dev.toml", "bare-metal-16c.toml"] {
        Profile::load(&dir.join(name)).unwrap();
    }
}

#[test]
fn profile_values_and_provenance() {
    let profile = Profile::from_toml_str(
        "shard_cores = [1]\nflush_policy = \"always\"\nsegment_bytes = \"128MiB\"\n",
        "p.toml",
    )
    .unwrap();
    assert_eq!(profile.shard_cores, CoreSpec::List(vec![1]));
    assert_eq!(profile.flush_policy, FlushPolicy::Always);
    assert_eq!(profile.segment_bytes, 128 << 20);
    assert_eq!(profile.source(Key::SegmentBytes), Provenance::Profile);
    assert_eq!(profile.source(Key::IoRingDepth), Provenance::Default);

    let resolved = profile.resolve_for(&small_machine()).unwrap();
    assert_eq!(
        resolved.bench_cores,
        vec![0],
        "auto bench takes the core without a shard"
    );
    assert_eq!(
        resolved.io_memory_bytes,
        2 << 20,
        "one shard: 8 MiB / 3 rounds down to 2 MiB"
    );
    let text = resolved.to_string();
    assert!(text.contains("segment_bytes = 128 MiB (profile)"), "{text}");
    assert!(text.contains("io_ring_depth = 128 (default)"), "{text}");
}

#[test]
fn flags_override_with_flag_provenance() {
    let mut profile = Profile::builtin_default();
    profile.set_from_flag("flush_policy", "never").unwrap();
    profile.set_from_flag("shard_cores", "1").unwrap();
    profile
        .set_from_flag("write_buffer_bytes", "64KiB")
        .unwrap();
    profile.set_from_flag("bench_cores", "[0]").unwrap();
    profile.set_from_flag("max_connections", "7").unwrap();
    assert_eq!(profile.flush_policy, FlushPolicy::Never);
    assert_eq!(profile.shard_cores, CoreSpec::List(vec![1]));
    assert_eq!(profile.write_buffer_bytes, 64 << 10);
    assert_eq!(profile.max_connections, ConnectionsSpec::Count(7));
    let resolved = profile.resolve_for(&small_machine()).unwrap();
    assert!(resolved.to_string().contains("flush_policy = never (flag)"));

    let err = profile.set_from_flag("flush_polcy", "never").unwrap_err();
    assert!(err.to_string().contains("`flush_policy`"), "{err}");
}

#[test]
fn auto_cores_leave_room_on_bigger_machines() {
    let resolved = Profile::builtin_default()
        .resolve_for(&server_machine())
        .unwrap();
    assert_eq!(resolved.shard_cores, (2..16).collect::<Vec<_>>());
    assert_eq!(resolved.bench_cores, vec![0, 1]);
    assert_eq!(resolved.io_memory_bytes, resolve::IO_MEMORY_AUTO_MAX_BYTES);
    assert_eq!(resolve::auto_shard_cores(&[0, 1, 2, 3]), vec![1, 2, 3]);
    assert_eq!(resolve::auto_shard_cores(&[5]), vec![5]);
}

#[test]
fn unknown_key_is_an_error_naming_key_and_fix() {
    let err = error_for("shard_core = \"auto\"\n");
    assert_names_key_and_fix(&err, "shard_core");
    assert!(err.to_string().contains("did you mean"), "{err}");
    let err = error_for("[storage]\nsegment_bytes = 1\n");
    assert_names_key_and_fix(&err, "storage");
}

#[test]
fn core_that_does_not_exist_is_an_error() {
    let err = error_for("shard_cores = [0, 7]\n");
    assert_names_key_and_fix(&err, "shard_cores");
    let message = err.to_string();
    assert!(message.contains("core(s) 7"), "{message}");
    assert!(message.contains("cores from 0-1"), "{message}");
    let err = error_for("bench_cores = \"4-5\"\n");
    assert_names_key_and_fix(&err, "bench_cores");
}

#[test]
fn io_memory_above_memlock_is_an_error() {
    let err = error_for("io_memory_bytes = \"4MiB\"\n");
    assert_names_key_and_fix(&err, "io_memory_bytes");
    let message = err.to_string();
    assert!(
        message.contains("24 MiB exceeds the locked-memory limit RLIMIT_MEMLOCK = 8 MiB"),
        "{message}"
    );
    assert!(
        message.contains("set io_memory_bytes = 1396736"),
        "{message}"
    );
    assert!(message.contains("ulimit -l 24576"), "{message}");

    let tiny = Machine {
        memlock_limit_bytes: Some(64 << 10),
        ..small_machine()
    };
    let err = Profile::builtin_default().resolve_for(&tiny).unwrap_err();
    assert_names_key_and_fix(&err, "io_memory_bytes");
}

#[test]
fn bad_flush_policy_is_an_error() {
    for text in [
        "flush_policy = \"sometimes\"\n",
        "flush_policy = 0\n",
        "flush_policy = -3\n",
        "flush_policy = true\n",
    ] {
        let err = error_for(text);
        assert_names_key_and_fix(&err, "flush_policy");
    }
    assert!(error_for("flush_policy = 0\n")
        .to_string()
        .contains("\"always\""));
}

#[test]
fn other_impossible_values_are_errors() {
    let cases = [
        ("io_ring_depth = 100\n", "io_ring_depth", "use 64 or 128"),
        (
            "write_buffer_bytes = 5000\n",
            "write_buffer_bytes",
            "4096 or 8192",
        ),
        ("segment_bytes = \"4GiB\"\n", "segment_bytes", "between"),
        ("max_request_bytes = 10\n", "max_request_bytes", "between"),
        (
            "pin_executors = \"yes\"\n",
            "pin_executors",
            "true or false",
        ),
        (
            "dma_writes_in_flight_per_partition = 64\nio_ring_depth = 32\n",
            "dma_writes_in_flight_per_partition",
            "at most 32",
        ),
        (
            "write_buffer_bytes = \"2MiB\"\nsegment_bytes = \"1MiB\"\n",
            "write_buffer_bytes",
            "raise segment_bytes",
        ),
        ("shard_cores = []\n", "shard_cores", "auto"),
    ];
    for (text, key, fix) in cases {
        let err = error_for(text);
        assert_names_key_and_fix(&err, key);
        assert!(err.to_string().contains(fix), "{text}: {err}");
    }
}

#[test]
fn syntax_and_read_errors_say_what_to_do() {
    let err = Profile::from_toml_str("shard_cores = ", "broken.toml").unwrap_err();
    assert!(matches!(err, ProfileError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("fix:"));
    let err = Profile::load(Path::new("/nonexistent/profile.toml")).unwrap_err();
    assert!(err.to_string().contains("--profile"), "{err}");
}

#[test]
fn connection_limits_are_flags_with_bounds() {
    let mut profile = Profile::builtin_default();
    assert_eq!(profile.connections_max_idle_ms, 600_000);
    assert_eq!(profile.request_read_timeout_ms, 30_000);
    assert_eq!(profile.max_in_flight_bytes_per_connection, 200 << 20);
    profile
        .set_from_flag("connections_max_idle_ms", "2000")
        .unwrap();
    profile
        .set_from_flag("request_read_timeout_ms", "3000")
        .unwrap();
    profile
        .set_from_flag("max_in_flight_bytes_per_connection", "4MiB")
        .unwrap();
    let resolved = profile.resolve_for(&small_machine()).unwrap();
    assert_eq!(resolved.connections_max_idle_ms, 2000);
    assert_eq!(resolved.request_read_timeout_ms, 3000);
    assert_eq!(resolved.max_in_flight_bytes_per_connection, 4 << 20);
    assert!(resolved
        .to_string()
        .contains("max_in_flight_bytes_per_connection = 4 MiB (flag)"));
    for (key, value) in [
        ("connections_max_idle_ms", "10"),
        ("request_read_timeout_ms", "0"),
        ("max_in_flight_bytes_per_connection", "1KiB"),
    ] {
        let err = profile.set_from_flag(key, value).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn log_cleaner_settings_are_flags_with_bounds() {
    let mut profile = Profile::builtin_default();
    assert_eq!(profile.log_cleaner_interval_ms, 5000);
    assert_eq!(profile.log_cleaner_max_keys, 524_288);
    profile
        .set_from_flag("log_cleaner_interval_ms", "200")
        .unwrap();
    profile
        .set_from_flag("log_cleaner_max_keys", "4096")
        .unwrap();
    let resolved = profile.resolve_for(&small_machine()).unwrap();
    assert_eq!(resolved.log_cleaner_interval_ms, 200);
    assert_eq!(resolved.log_cleaner_max_keys, 4096);
    assert!(resolved
        .to_string()
        .contains("log_cleaner_interval_ms = 200 (flag)"));
    for (key, value) in [
        ("log_cleaner_interval_ms", "10"),
        ("log_cleaner_max_keys", "1"),
    ] {
        let err = profile.set_from_flag(key, value).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn keys_set_from_a_config_file_or_the_environment_keep_that_provenance() {
    let mut profile = Profile::builtin_default();
    profile
        .set_text(
            "flush_policy",
            "always",
            "config file r.toml",
            Provenance::File,
        )
        .unwrap();
    profile
        .set_value(
            "io_ring_depth",
            toml::Value::Integer(256),
            "environment X",
            Provenance::Env,
        )
        .unwrap();
    assert_eq!(profile.source(Key::FlushPolicy), Provenance::File);
    assert_eq!(profile.source(Key::IoRingDepth), Provenance::Env);
    assert_eq!(profile.flush_policy, FlushPolicy::Always);
    let error = profile
        .set_text(
            "io_ring_depth",
            "3",
            "environment RINGBROKER_IO_RING_DEPTH",
            Provenance::Env,
        )
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("environment RINGBROKER_IO_RING_DEPTH"),
        "{error}"
    );
}

#[test]
fn shipped_profiles_load_by_name() {
    for (name, _) in SHIPPED_PROFILES {
        let profile = Profile::shipped(name).unwrap().unwrap();
        assert!(profile.resolve_for(&server_machine()).is_ok(), "{name}");
    }
    assert!(Profile::shipped("nope").is_none());
    assert_eq!(Profile::default_text(Key::ShardCores), "auto");
    assert_eq!(Profile::default_text(Key::IoRingDepth), "128");
}

#[test]
fn config_keys_are_kafka_names_where_kafka_has_the_setting() {
    assert_eq!(
        Key::MaxRequestBytes.config_key(),
        "socket.request.max.bytes"
    );
    assert_eq!(Key::FlushPolicy.config_key(), "flush_policy");
    let mut names: Vec<&str> = Key::ALL.iter().map(|key| key.config_key()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Key::ALL.len());
    assert!(Key::ALL.iter().all(|key| !key.doc().is_empty()));
}

#[test]
fn consumer_group_timeouts_are_flags_with_bounds() {
    let mut profile = Profile::builtin_default();
    assert_eq!(profile.group_consumer_session_timeout_ms, 45_000);
    assert_eq!(profile.group_consumer_heartbeat_interval_ms, 5_000);
    profile
        .set_from_flag("group_consumer_session_timeout_ms", "6000")
        .unwrap();
    profile
        .set_from_flag("group_consumer_heartbeat_interval_ms", "500")
        .unwrap();
    let resolved = profile.resolve_for(&small_machine()).unwrap();
    assert_eq!(resolved.group_consumer_session_timeout_ms, 6000);
    assert_eq!(resolved.group_consumer_heartbeat_interval_ms, 500);
    assert!(resolved
        .to_string()
        .contains("group_consumer_session_timeout_ms = 6000 (flag)"));
    for (key, value) in [
        ("group_consumer_session_timeout_ms", "10"),
        ("group_consumer_heartbeat_interval_ms", "5"),
    ] {
        let err = profile.set_from_flag(key, value).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    // A heartbeat interval as long as the session would let members time out between heartbeats.
    profile
        .set_from_flag("group_consumer_heartbeat_interval_ms", "6000")
        .unwrap();
    let err = profile.resolve_for(&small_machine()).unwrap_err();
    assert_names_key_and_fix(&err, "group_consumer_heartbeat_interval_ms");
}
