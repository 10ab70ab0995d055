//! Tests of the credential chain without a network: the environment, files
//! and profile sources, the order of the automatic chain, reloads, project
//! id discovery, and the audit that nothing formatted shows a secret. The
//! instance metadata tests, which run a fake metadata service on loopback,
//! are in `tests/metadata.rs`.

mod metadata;

use super::*;

const AK: &str = "AKSECRETVALUE0001";
const SK: &str = "SKSECRETVALUE0001";
const TOKEN: &str = "TOKENSECRETVALUE0001";

/// Builds an environment snapshot from string pairs.
fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

/// Writes a file with the given mode.
fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("test file is written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("test file mode is set");
    }
    #[cfg(not(unix))]
    let _ = mode;
    path
}

/// A configuration with the given source and a metadata URL that is
/// never contacted.
fn config(source: Source) -> CredentialsConfig {
    CredentialsConfig {
        source,
        metadata_url: "http://127.0.0.1:9".to_string(),
        ..CredentialsConfig::default()
    }
}

/// Access key, secret key and security token as plain strings.
type Keys = (String, String, Option<String>);

/// The keys a provider hands out now, as plain strings.
fn keys(credentials: &Credentials) -> Keys {
    (
        credentials.access_key.expose().to_string(),
        credentials.secret_key.expose().to_string(),
        credentials
            .security_token
            .as_ref()
            .map(|token| token.expose().to_string()),
    )
}

/// Builds a provider and reads its keys, for the static sources.
fn load(
    config: &CredentialsConfig,
    environment: &Environment,
) -> Result<(Resolved, Keys, Vec<String>), CredentialError> {
    let (provider, warnings) = CredentialProvider::new(config, environment)?;
    let Kind::Static { current, .. } = &provider.inner.kind else {
        panic!("expected a static source, got {}", provider.resolved());
    };
    let credentials = read_lock(current);
    Ok((provider.resolved().clone(), keys(&credentials), warnings))
}

#[test]
fn environment_sdk_names_win_over_hw_names() {
    let environment = env(&[
        ("HUAWEICLOUD_SDK_AK", "sdk-ak"),
        ("HUAWEICLOUD_SDK_SK", "sdk-sk"),
        ("HUAWEICLOUD_SDK_SECURITY_TOKEN", "sdk-token"),
        ("HW_ACCESS_KEY", "hw-ak"),
        ("HW_SECRET_KEY", "hw-sk"),
    ]);
    let (resolved, keys, warnings) =
        load(&config(Source::Auto), &environment).expect("env resolves");
    assert_eq!(
        resolved,
        Resolved::Env {
            names: "HUAWEICLOUD_SDK_*"
        }
    );
    assert_eq!(
        keys,
        ("sdk-ak".into(), "sdk-sk".into(), Some("sdk-token".into()))
    );
    assert!(warnings.is_empty());
}

#[test]
fn environment_hw_names_are_used_when_sdk_names_are_unset() {
    let environment = env(&[
        ("HUAWEICLOUD_SDK_AK", ""),
        ("HW_ACCESS_KEY", "hw-ak"),
        ("HW_SECRET_KEY", "hw-sk"),
        ("HW_SECURITY_TOKEN", "hw-token"),
    ]);
    let (resolved, keys, _) = load(&config(Source::Env), &environment).expect("env resolves");
    assert_eq!(resolved, Resolved::Env { names: "HW_*" });
    assert_eq!(
        keys,
        ("hw-ak".into(), "hw-sk".into(), Some("hw-token".into()))
    );
    assert_eq!(resolved.to_string(), "environment variables HW_*");
}

#[test]
fn environment_incomplete_set_names_the_missing_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("HUAWEICLOUD_SDK_AK", "a")], "HUAWEICLOUD_SDK_SK"),
        (&[("HUAWEICLOUD_SDK_SK", "s")], "HUAWEICLOUD_SDK_AK"),
        (
            &[("HUAWEICLOUD_SDK_SECURITY_TOKEN", "t")],
            "HUAWEICLOUD_SDK_AK",
        ),
        (&[("HW_ACCESS_KEY", "a")], "HW_SECRET_KEY"),
        // An incomplete SDK set is an error even when the HW set is whole.
        (
            &[
                ("HUAWEICLOUD_SDK_AK", "a"),
                ("HW_ACCESS_KEY", "a"),
                ("HW_SECRET_KEY", "s"),
            ],
            "HUAWEICLOUD_SDK_SK",
        ),
    ];
    for (pairs, expected) in cases {
        for source in [Source::Auto, Source::Env] {
            match CredentialProvider::new(&config(source), &env(pairs)) {
                Err(CredentialError::MissingVariable { name }) => {
                    assert_eq!(name, *expected, "{pairs:?}")
                }
                other => panic!(
                    "{pairs:?}: expected MissingVariable, got {:?}",
                    other.map(|p| p.0)
                ),
            }
        }
    }
}

#[test]
fn explicit_env_source_without_variables_is_an_error() {
    let result = CredentialProvider::new(&config(Source::Env), &env(&[]));
    match result {
        Err(error @ CredentialError::NotFound { .. }) => {
            assert!(error.to_string().contains("HUAWEICLOUD_SDK_AK"), "{error}");
        }
        other => panic!("expected NotFound, got {:?}", other.map(|p| p.0)),
    }
}

#[test]
fn files_from_credentials_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "access_key", "file-ak\n", 0o600);
    write(dir.path(), "secret_key", "file-sk \n\n", 0o400);
    let environment = env(&[(
        "CREDENTIALS_DIRECTORY",
        dir.path().to_str().expect("utf-8 tempdir"),
    )]);
    for source in [Source::Auto, Source::Files] {
        let (resolved, keys, warnings) =
            load(&config(source), &environment).expect("files resolve");
        assert_eq!(
            resolved,
            Resolved::Files {
                access_key: dir.path().join("access_key"),
                secret_key: dir.path().join("secret_key"),
            }
        );
        assert_eq!(keys, ("file-ak".into(), "file-sk".into(), None));
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    write(dir.path(), "security_token", "file-token\n", 0o600);
    let (_, keys, _) = load(&config(Source::Files), &environment).expect("files resolve");
    assert_eq!(keys.2.as_deref(), Some("file-token"));
}

#[test]
fn files_readable_by_others_warn_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let access = write(dir.path(), "access_key", "file-ak", 0o600);
    let secret = write(dir.path(), "secret_key", "file-sk", 0o644);
    let configured = CredentialsConfig {
        access_key_file: Some(access),
        secret_key_file: Some(secret.clone()),
        ..config(Source::Files)
    };
    let (_, _, warnings) = load(&configured, &env(&[])).expect("files resolve");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&secret.display().to_string()),
        "{warnings:?}"
    );
    assert!(!warnings[0].contains("file-sk"));

    // systemd's credential directory keeps its files to the unit's user
    // (mode 0440 with an ACL on systemd 254): no warning there.
    let environment = env(&[(
        "CREDENTIALS_DIRECTORY",
        dir.path().to_str().expect("utf-8 tempdir"),
    )]);
    let (_, _, warnings) = load(&config(Source::Files), &environment).expect("files resolve");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn empty_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "access_key", "file-ak", 0o600);
    let secret = write(dir.path(), "secret_key", " \n", 0o600);
    let environment = env(&[(
        "CREDENTIALS_DIRECTORY",
        dir.path().to_str().expect("utf-8 tempdir"),
    )]);
    match CredentialProvider::new(&config(Source::Auto), &environment) {
        Err(CredentialError::Empty { path }) => assert_eq!(path, secret),
        other => panic!("expected Empty, got {:?}", other.map(|p| p.0)),
    }
}

#[test]
fn explicit_file_paths_are_used_and_must_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let access = write(dir.path(), "ak.txt", "explicit-ak", 0o600);
    let secret = write(dir.path(), "sk.txt", "explicit-sk", 0o600);
    let mut explicit = config(Source::Auto);
    explicit.access_key_file = Some(access.clone());
    explicit.secret_key_file = Some(secret.clone());
    let (resolved, keys, _) = load(&explicit, &env(&[])).expect("files resolve");
    assert_eq!(
        resolved,
        Resolved::Files {
            access_key: access,
            secret_key: secret
        }
    );
    assert_eq!(keys, ("explicit-ak".into(), "explicit-sk".into(), None));

    explicit.security_token_file = Some(dir.path().join("missing-token"));
    match CredentialProvider::new(&explicit, &env(&[])) {
        Err(CredentialError::Io { path, .. }) => {
            assert_eq!(path, dir.path().join("missing-token"))
        }
        other => panic!("expected Io, got {:?}", other.map(|p| p.0)),
    }

    let mut half = config(Source::Files);
    half.access_key_file = Some(dir.path().join("ak.txt"));
    match CredentialProvider::new(&half, &env(&[])) {
        Err(error @ CredentialError::Incomplete { .. }) => {
            assert!(error.to_string().contains("secret_key_file"), "{error}");
        }
        other => panic!("expected Incomplete, got {:?}", other.map(|p| p.0)),
    }
}

#[test]
fn profile_parse_reads_basic_section() {
    let text = "\
# a comment
; another comment
[other]
ak = not-this-one
sk = nor-this

[ basic ]
AK = profile-ak   # inline comment
sk: \"profile-sk\"
security_token =
project_id = 0123456789abcdef
unknown = ignored
";
    let profile = parse_profile(text, Path::new("/p")).expect("profile parses");
    assert_eq!(
        profile.access_key.as_ref().map(Secret::expose),
        Some("profile-ak")
    );
    assert_eq!(
        profile.secret_key.as_ref().map(Secret::expose),
        Some("profile-sk")
    );
    assert_eq!(profile.security_token, None);
    assert_eq!(profile.project_id.as_deref(), Some("0123456789abcdef"));
}

#[test]
fn profile_errors_name_path_and_line_but_not_values() {
    let path = Path::new("/etc/profile-file");
    let check = |text: &str, line: Option<usize>, message: &str| {
        let result =
            parse_profile(text, path).and_then(|profile| profile_credentials(&profile, path));
        match result {
            Err(error @ CredentialError::Profile { .. }) => {
                let CredentialError::Profile {
                    path: got,
                    line: got_line,
                    ..
                } = &error
                else {
                    unreachable!();
                };
                assert_eq!(got, path);
                assert_eq!(*got_line, line, "{text:?}");
                let shown = error.to_string();
                assert!(shown.contains("/etc/profile-file"), "{shown}");
                assert!(shown.contains(message), "{shown}");
                assert!(!shown.contains("SECRETVALUE"), "{shown}");
            }
            Err(other) => panic!("{text:?}: expected Profile, got {other}"),
            Ok(_) => panic!("{text:?}: expected an error"),
        }
    };
    check("[basic]\nak = AKSECRETVALUE\n", None, "no `sk`");
    check("[basic]\nsk = SKSECRETVALUE\n", None, "no `ak`");
    check("[other]\nak = a\nsk = s\n", None, "no `ak`");
    check(
        "[basic]\nak = a\nSKSECRETVALUE\n",
        Some(3),
        "expected `key = value`",
    );
    check("[basic\n", Some(1), "closing");
}

#[test]
fn profile_from_environment_variable_and_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let named = write(
        dir.path(),
        "named",
        "[basic]\nak = named-ak\nsk = named-sk\n",
        0o600,
    );
    let environment = env(&[(
        "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
        named.to_str().expect("utf-8"),
    )]);
    let (resolved, keys, warnings) =
        load(&config(Source::Profile), &environment).expect("profile resolves");
    assert_eq!(resolved, Resolved::Profile { path: named });
    assert_eq!(keys, ("named-ak".into(), "named-sk".into(), None));
    assert!(warnings.is_empty());

    std::fs::create_dir(dir.path().join(".huaweicloud")).expect("mkdir");
    let home_profile = write(
        &dir.path().join(".huaweicloud"),
        "credentials",
        "[basic]\nak = home-ak\nsk = home-sk\nsecurity_token = home-token\n",
        0o644,
    );
    let environment = env(&[("HOME", dir.path().to_str().expect("utf-8"))]);
    let (resolved, keys, warnings) =
        load(&config(Source::Auto), &environment).expect("profile resolves");
    assert_eq!(
        resolved,
        Resolved::Profile {
            path: home_profile.clone()
        }
    );
    assert_eq!(
        keys,
        (
            "home-ak".into(),
            "home-sk".into(),
            Some("home-token".into())
        )
    );
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains(&home_profile.display().to_string()));
}

#[test]
fn auto_order_is_env_files_profile_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().to_str().expect("utf-8").to_string();
    std::fs::create_dir(dir.path().join(".huaweicloud")).expect("mkdir");
    write(
        &dir.path().join(".huaweicloud"),
        "credentials",
        "[basic]\nak = p-ak\nsk = p-sk\n",
        0o600,
    );
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).expect("mkdir");
    write(&creds, "access_key", "f-ak", 0o600);
    write(&creds, "secret_key", "f-sk", 0o600);
    let creds = creds.to_str().expect("utf-8").to_string();
    let empty_dir = dir.path().join("empty");
    std::fs::create_dir(&empty_dir).expect("mkdir");
    let empty_dir = empty_dir.to_str().expect("utf-8").to_string();

    let everything = vec![
        ("HW_ACCESS_KEY", "e-ak"),
        ("HW_SECRET_KEY", "e-sk"),
        ("CREDENTIALS_DIRECTORY", creds.as_str()),
        ("HOME", home.as_str()),
    ];
    let check = |pairs: &[(&str, &str)], expected: &str| {
        let (provider, _) =
            CredentialProvider::new(&config(Source::Auto), &env(pairs)).expect("auto resolves");
        let shown = match provider.resolved() {
            Resolved::Env { .. } => "env",
            Resolved::Files { .. } => "files",
            Resolved::Profile { .. } => "profile",
            Resolved::Metadata { .. } => "metadata",
        };
        assert_eq!(shown, expected, "{pairs:?}");
    };
    check(&everything, "env");
    check(&everything[2..], "files");
    check(
        &[
            ("CREDENTIALS_DIRECTORY", empty_dir.as_str()),
            ("HOME", home.as_str()),
        ],
        "profile",
    );
    check(&everything[3..], "profile");
    check(
        &[
            ("HOME", empty_dir.as_str()),
            ("CREDENTIALS_DIRECTORY", empty_dir.as_str()),
        ],
        "metadata",
    );
    check(&[], "metadata");
}

#[test]
fn explicit_sources_fail_when_unusable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().to_str().expect("utf-8");
    let environment = env(&[("HOME", empty), ("CREDENTIALS_DIRECTORY", empty)]);
    assert!(matches!(
        CredentialProvider::new(&config(Source::Files), &environment),
        Err(CredentialError::Io { .. })
    ));
    assert!(matches!(
        CredentialProvider::new(&config(Source::Files), &env(&[])),
        Err(CredentialError::Incomplete { .. })
    ));
    assert!(matches!(
        CredentialProvider::new(&config(Source::Profile), &environment),
        Err(CredentialError::Io { .. })
    ));
    assert!(matches!(
        CredentialProvider::new(&config(Source::Profile), &env(&[])),
        Err(CredentialError::Incomplete { .. })
    ));
    let (provider, warnings) = CredentialProvider::new(
        &config(Source::Metadata),
        &env(&[("HW_ACCESS_KEY", "a"), ("HW_SECRET_KEY", "s")]),
    )
    .expect("metadata is chosen without I/O");
    assert_eq!(
        provider.resolved(),
        &Resolved::Metadata {
            url: "http://127.0.0.1:9".into()
        }
    );
    assert!(warnings.is_empty());
}

#[test]
fn reload_rereads_files_and_bumps_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "access_key", "ak-1", 0o600);
    write(dir.path(), "secret_key", "sk-1", 0o600);
    let environment = env(&[("CREDENTIALS_DIRECTORY", dir.path().to_str().expect("utf-8"))]);
    let (provider, _) =
        CredentialProvider::new(&config(Source::Auto), &environment).expect("files resolve");
    assert_eq!(provider.generation(), 0);
    assert!(
        !provider
            .reload(&environment, &mut Vec::new())
            .expect("reload works")
    );
    assert_eq!(provider.generation(), 0);

    write(dir.path(), "secret_key", "sk-2", 0o600);
    assert!(
        provider
            .reload(&environment, &mut Vec::new())
            .expect("reload works")
    );
    assert_eq!(provider.generation(), 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let credentials = runtime.block_on(provider.get()).expect("static get");
    assert_eq!(credentials.secret_key.expose(), "sk-2");

    // A failed reload keeps the keys in use.
    write(dir.path(), "secret_key", "", 0o600);
    assert!(matches!(
        provider.reload(&environment, &mut Vec::new()),
        Err(CredentialError::Empty { .. })
    ));
    let credentials = runtime.block_on(provider.get()).expect("static get");
    assert_eq!(credentials.secret_key.expose(), "sk-2");
    assert_eq!(provider.generation(), 1);
}

#[test]
fn reload_rereads_the_environment_snapshot() {
    let first = env(&[("HUAWEICLOUD_SDK_AK", "a"), ("HUAWEICLOUD_SDK_SK", "s1")]);
    let (provider, _) =
        CredentialProvider::new(&config(Source::Env), &first).expect("env resolves");
    assert!(
        !provider
            .reload(&first, &mut Vec::new())
            .expect("reload works")
    );
    let second = env(&[("HUAWEICLOUD_SDK_AK", "a"), ("HUAWEICLOUD_SDK_SK", "s2")]);
    assert!(
        provider
            .reload(&second, &mut Vec::new())
            .expect("reload works")
    );
    assert_eq!(provider.generation(), 1);
    assert!(matches!(
        provider.reload(&env(&[]), &mut Vec::new()),
        Err(CredentialError::MissingVariable { .. })
    ));
}

/// Environment pairs, profile path and the expected project id.
type ProjectIdCase<'a> = (&'a [(&'a str, &'a str)], Option<&'a Path>, Option<&'a str>);

#[test]
fn project_id_from_environment_and_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = write(
        dir.path(),
        "p",
        "[basic]\nak=a\nsk=s\nproject_id = from-profile\n",
        0o600,
    );
    let cases: &[ProjectIdCase] = &[
        (
            &[
                ("HUAWEICLOUD_SDK_PROJECT_ID", "sdk"),
                ("HW_PROJECT_ID", "hw"),
            ],
            Some(&profile),
            Some("sdk"),
        ),
        (&[("HW_PROJECT_ID", "hw")], Some(&profile), Some("hw")),
        (&[], Some(&profile), Some("from-profile")),
        (&[], None, None),
        (&[], Some(Path::new("/nonexistent/profile")), None),
    ];
    for (pairs, path, expected) in cases {
        assert_eq!(
            project_id_from_environment(&env(pairs), *path).as_deref(),
            *expected,
            "{pairs:?} {path:?}"
        );
    }
    let via_variable = env(&[(
        "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
        profile.to_str().expect("utf-8"),
    )]);
    assert_eq!(
        project_id_from_environment(&via_variable, None).as_deref(),
        Some("from-profile")
    );
}

#[test]
fn nothing_formatted_shows_a_secret() {
    let secrets = [AK, SK, TOKEN];
    let credentials = Credentials {
        access_key: Secret::new(AK),
        secret_key: Secret::new(SK),
        security_token: Some(Secret::new(TOKEN)),
        expires_at: Some(Utc::now()),
    };
    let environment = env(&[
        ("HUAWEICLOUD_SDK_AK", AK),
        ("HUAWEICLOUD_SDK_SK", SK),
        ("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN),
        ("HW_ACCESS_KEY", AK),
        ("HW_SECRET_KEY", SK),
        ("HW_SECURITY_TOKEN", TOKEN),
    ]);
    let (provider, _) =
        CredentialProvider::new(&config(Source::Auto), &environment).expect("env resolves");
    let errors = [
        CredentialError::NotFound {
            tried: "environment".into(),
        },
        CredentialError::MissingVariable {
            name: "HUAWEICLOUD_SDK_SK",
        },
        CredentialError::Incomplete {
            what: "secret_key_file".into(),
        },
        CredentialError::Io {
            path: "/run/credentials/x/secret_key".into(),
            source: std::io::Error::other("denied"),
        },
        CredentialError::Empty {
            path: "/run/credentials/x/secret_key".into(),
        },
        parse_profile("[basic]\nak = x\nSKSECRETVALUE0001\n", Path::new("/p"))
            .expect_err("a malformed line is an error"),
        CredentialError::NoAgency,
        CredentialError::Metadata {
            url: "http://169.254.169.254".into(),
            message: "answered HTTP 500".into(),
        },
        CredentialError::Expired {
            expires_at: Utc::now(),
        },
    ];
    let mut shown = vec![
        format!("{credentials:?}"),
        format!("{:?}", config(Source::Files)),
        format!("{environment:?}"),
        format!("{environment:#?}"),
        format!("{provider:?}"),
        format!("{:?}", provider.resolved()),
        provider.resolved().to_string(),
        format!(
            "{:?}",
            parse_profile(
                &format!("[basic]\nak = {AK}\nsk = {SK}\nsecurity_token = {TOKEN}\n"),
                Path::new("/p")
            )
        ),
    ];
    for error in &errors {
        shown.push(format!("{error:?}"));
        shown.push(error.to_string());
        shown.push(format!("{:?}", error.duplicate()));
    }
    for text in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "{text} shows a secret");
        }
    }
    assert!(format!("{environment:?}").contains("HUAWEICLOUD_SDK_SK"));
}
