//! Wrong targets are errors, never empty answers: a registry or conflict log that is not there,
//! a location that is a URL, an outcome that does not exist, a tenant the registry does not
//! know. Each exits 2 with a message naming what was wrong, and a command that only reads
//! creates nothing (each runs in an empty directory that must stay empty).

use std::path::Path;
use std::process::{Command, Output};

/// Runs the CLI in `dir`, with no location taken from the environment unless `env` sets one.
fn cli_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host-cli"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("TMF632_REGISTRY")
        .env_remove("TMF632_CONFLICT_LOG")
        .env_remove("POLICY_BUCKET");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("running host-cli")
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    cli_env(dir, &[], args)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts exit status 2 and that stderr says each of `needles`; returns stderr.
fn fails_saying(out: &Output, what: &str, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit status\nstdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "{what}: expected {needle:?} in: {err}"
        );
    }
    err
}

/// Runs `args` in the empty `dir` and asserts that it fails saying each of `needles` and
/// leaves `dir` empty.
fn fails_creating_nothing(dir: &Path, args: &[&str], needles: &[&str]) {
    let out = cli(dir, args);
    let what = args.join(" ");
    assert_eq!(names_in(dir), Vec::<String>::new(), "{what} created");
    fails_saying(&out, &what, needles);
}

/// Asserts that the command succeeded, showing its stderr when it did not.
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The read-only commands on the registry, without `--registry` (so on the default location).
const READ_REGISTRY: &[&[&str]] = &[
    &["policy", "list", "--tenant", "acme"],
    &["policy", "list", "--tenant", "acme", "--json"],
    &["policy", "history", "--tenant", "acme"],
    &["policy", "config", "--tenant", "acme"],
    &["policy", "shadow-report", "--tenant", "acme"],
];

/// The commands on the conflict log, without `--log`; all but `resolve` only read, and
/// `resolve` needs a recorded conflict.
const READ_LOG: &[&[&str]] = &[
    &["conflicts", "list", "--tenant", "acme"],
    &["conflicts", "list", "--tenant", "acme", "--json"],
    &["conflicts", "show", "3f9c2a71b0d4", "--tenant", "acme"],
    &["conflicts", "export", "--tenant", "acme"],
    &[
        "conflicts",
        "replay",
        "--tenant",
        "acme",
        "--policy",
        "default",
    ],
    &[
        "conflicts",
        "resolve",
        "3f9c2a71b0d4",
        "--tenant",
        "acme",
        "--policy",
        "default",
    ],
];

/// A command that changes the registry, creating it if need be.
const SET_CONFIG: &[&str] = &[
    "policy",
    "config",
    "--tenant",
    "acme",
    "--set",
    r#"{"statusAuthority":"na"}"#,
];

#[test]
fn read_only_commands_create_nothing_and_name_the_missing_default() {
    let dir = tempfile::tempdir().unwrap();
    let registry = [
        "no policy registry at policy-registry",
        "neither --registry nor $TMF632_REGISTRY",
        "--registry aws",
    ];
    let log = [
        "no conflict log at conflict-log",
        "neither --log nor $TMF632_CONFLICT_LOG",
        "--log aws",
    ];
    for (commands, needles) in [(READ_REGISTRY, registry), (READ_LOG, log)] {
        for args in commands {
            fails_creating_nothing(dir.path(), args, &needles);
        }
    }
}

#[test]
fn a_missing_conflict_log_is_named_with_the_aws_hint() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent").join("dir");
    let missing = missing.to_str().unwrap();
    let named = format!("no conflict log at {missing} (from --log)");
    for args in READ_LOG {
        fails_creating_nothing(
            dir.path(),
            &[args, &["--log", missing][..]].concat(),
            &[&named, "--log aws for the DynamoDB log"],
        );
    }
    // A file is not a log either.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let out = cli(
        dir.path(),
        &["conflicts", "list", "--tenant", "acme", "--log", "file"],
    );
    fails_saying(
        &out,
        "--log FILE",
        &["file (from --log) is not a directory"],
    );
}

#[test]
fn a_missing_registry_is_named_by_read_only_and_changing_commands() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let missing = missing.to_str().unwrap();
    let changes: &[&[&str]] = &[
        &["policy", "activate", "v2", "--tenant", "acme"],
        &["policy", "rollback", "--tenant", "acme"],
        &["policy", "shadow", "v2", "--tenant", "acme"],
        &["policy", "shadow", "--stop", "--tenant", "acme"],
    ];
    let named = format!("no policy registry at {missing} (from --registry)");
    for args in READ_REGISTRY.iter().chain(changes) {
        fails_creating_nothing(
            dir.path(),
            &[args, &["--registry", missing][..]].concat(),
            &[&named, "--registry aws"],
        );
    }
}

/// The commands that add to the registry still create it where it is named.
#[test]
fn setting_a_configuration_creates_the_default_registry() {
    let dir = tempfile::tempdir().unwrap();
    succeeded(&cli(dir.path(), SET_CONFIG));
    assert_eq!(names_in(dir.path()), ["policy-registry"]);
    let out = cli(dir.path(), &["policy", "list", "--tenant", "acme"]);
    succeeded(&out);
}

#[test]
fn urls_are_refused_with_what_is_supported() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "s3://bucket",
        "http://example.com/registry",
        "dynamodb://tmf632-policy-registry",
    ] {
        for args in [
            &["policy", "list", "--tenant", "acme"][..],
            // A command that may create the registry creates no `s3:/bucket` either.
            &["policy", "upload", "default", "--tenant", "acme"][..],
            SET_CONFIG,
        ] {
            fails_creating_nothing(
                dir.path(),
                &[args, &["--registry", url][..]].concat(),
                &[
                    &format!("{url} (from --registry) is a URL"),
                    "a directory, or `aws`",
                ],
            );
        }
    }
    for url in ["s3://bucket", "dynamodb://tmf632-conflicts"] {
        fails_creating_nothing(
            dir.path(),
            &["conflicts", "list", "--tenant", "acme", "--log", url],
            &[
                &format!("{url} (from --log) is a URL"),
                "a directory, or `aws`",
            ],
        );
    }
    // From the environment: named as such.
    for (var, url, args) in [
        (
            "TMF632_REGISTRY",
            "s3://bucket",
            ["policy", "history", "--tenant", "acme"],
        ),
        (
            "TMF632_CONFLICT_LOG",
            "s3://bucket/log",
            ["conflicts", "export", "--tenant", "acme"],
        ),
    ] {
        let out = cli_env(dir.path(), &[(var, url)], &args);
        fails_saying(&out, var, &[&format!("{url} (from ${var})")]);
    }
    assert_eq!(names_in(dir.path()), Vec::<String>::new());
}

#[test]
fn an_unknown_outcome_is_refused_with_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("log")).unwrap();
    let base = ["conflicts", "list", "--tenant", "acme", "--log", "log"];
    let mut args = base.to_vec();
    args.extend(["--outcome", "bogus"]);
    let err = fails_saying(&cli(dir.path(), &args), "--outcome bogus", &["bogus"]);
    for valid in ["keep-local", "take-remote", "merged", "rejected", "failed"] {
        assert!(err.contains(valid), "{valid} not offered: {err}");
    }
    for verb in ["export", "replay"] {
        let mut args = vec!["conflicts", verb, "--tenant", "acme", "--log", "log"];
        args.extend(["--policy", "default", "--outcome", "Merged"]);
        if verb == "export" {
            args.retain(|a| *a != "--policy" && *a != "default");
        }
        fails_saying(&cli(dir.path(), &args), verb, &["Merged", "merged"]);
    }
    // A valid one on an existing (empty) log: an honest zero.
    let mut args = base.to_vec();
    args.extend(["--outcome", "take-remote"]);
    let out = cli(dir.path(), &args);
    succeeded(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0 conflicts\n");
}

#[test]
fn an_unknown_tenant_is_named_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    let reg = reg.to_str().unwrap();
    // An empty registry: no tenant at all, and it says so.
    std::fs::create_dir(reg).unwrap();
    let out = cli(
        dir.path(),
        &["policy", "list", "--tenant", "acme", "--registry", reg],
    );
    fails_saying(
        &out,
        "empty registry",
        &["no tenant acme in this registry", "no tenants at all"],
    );

    for tenant in ["globex", "acme"] {
        let out = cli(
            dir.path(),
            &[
                "policy",
                "config",
                "--tenant",
                tenant,
                "--registry",
                reg,
                "--set",
                r#"{"statusAuthority":"na"}"#,
            ],
        );
        succeeded(&out);
    }
    for verb in ["list", "history", "config", "shadow-report"] {
        for json in [false, true] {
            let mut args = vec!["policy", verb, "--tenant", "acmee", "--registry", reg];
            if json {
                args.push("--json");
            }
            let out = cli(dir.path(), &args);
            let err = fails_saying(
                &out,
                &args.join(" "),
                &["no tenant acmee in this registry", "known: acme, globex"],
            );
            assert!(!err.contains("default policy"), "{err}");
            assert!(out.stdout.is_empty(), "{verb}: nothing on stdout");
        }
    }
    let out = cli(
        dir.path(),
        &["policy", "list", "--tenant", "acme", "--registry", reg],
    );
    succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tenant acme "));
}
