//! `--registry aws` and `--log aws` as an operator meets them: `--region` and `--profile` are
//! honoured, and what is missing (the region, the credentials, the table, the bucket) is named
//! in one line with exit status 2, never as the SDK's dump. The binary runs in an empty
//! environment (no ~/.aws, no instance metadata), so nothing here reaches the internet; the
//! tests with a table run against moto (`scripts/with-moto.sh` sets MOTO_ENDPOINT).
//!
//! AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing scripts/with-moto.sh \
//!     cargo test -p host-cli --features aws --test aws_errors

#![cfg(feature = "aws")]

#[path = "common/aws.rs"]
mod aws;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::{Command, Output};

use aws::{cli, cli_on_moto, create_table, moto, unique};

fn run(cmd: &mut Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("running host-cli")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status 2 and one line on stderr, `error: …`, with no SDK dump and no panic.
fn one_line_error(out: &Output, args: &[&str]) -> String {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    assert!(
        text.starts_with("error: ") && text.ends_with('\n'),
        "{args:?}: {text:?}"
    );
    assert_eq!(text.lines().count(), 1, "{args:?}: one line, not {text:?}");
    for dump in [
        "DispatchFailure",
        "ServiceError {",
        "unhandled error",
        "panicked",
        " { ",
    ] {
        assert!(
            !text.contains(dump),
            "{args:?}: a dump ({dump}) in {text:?}"
        );
    }
    text.trim_end().to_owned()
}

/// The commands that reach AWS, before the flags each test adds.
const LIST_CONFLICTS: &[&str] = &["conflicts", "list", "-t", "acme", "--log", "aws"];
const LIST_POLICIES: &[&str] = &["policy", "list", "-t", "acme", "--registry", "aws"];
const UPLOAD_POLICY: &[&str] = &[
    "policy",
    "upload",
    "default",
    "-t",
    "acme",
    "--registry",
    "aws",
];

/// Asserts that `conflicts list` succeeded on an empty log.
fn no_conflicts(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0 conflicts\n");
}

/// No region anywhere: the command says so and what to do, before it sends anything (an
/// endpoint that would record a connection receives none).
#[test]
fn no_region_is_named_before_any_call() {
    let home = tempfile::tempdir().unwrap();
    let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
    endpoint.set_nonblocking(true).unwrap();
    let url = format!("http://{}", endpoint.local_addr().unwrap());
    for args in [
        LIST_CONFLICTS.to_vec(),
        [LIST_POLICIES, &["--bucket", "b"]].concat(),
        [UPLOAD_POLICY, &["--bucket", "b"]].concat(),
    ] {
        let out = run(
            cli(home.path())
                .env("AWS_ENDPOINT_URL", &url)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing"),
            &args,
        );
        assert_eq!(
            one_line_error(&out, &args),
            "error: no AWS region: pass --region or set AWS_REGION"
        );
    }
    match endpoint.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the CLI connected before naming the missing region: {other:?}"),
    }
}

/// No credentials anywhere: named as such, with the places the SDK looked, before any call.
#[test]
fn no_credentials_are_named() {
    let home = tempfile::tempdir().unwrap();
    let args = [LIST_CONFLICTS, &["--region", "eu-west-1"]].concat();
    let out = run(&mut cli(home.path()), &args);
    let text = one_line_error(&out, &args);
    assert!(
        text.starts_with("error: no AWS credentials (tried Environment, Profile"),
        "{text}"
    );
    assert!(
        text.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{text}"
    );
}

/// A profile that is not defined is named as the problem, not as a missing region.
#[test]
fn an_undefined_profile_is_named() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config"),
        "[profile other]\nregion = eu-west-1\n",
    )
    .unwrap();
    let args = [LIST_CONFLICTS, &["--profile", "nope"]].concat();
    let text = one_line_error(&run(&mut cli(home.path()), &args), &args);
    assert!(
        text.starts_with(
            "error: --profile nope: no AWS credentials (profile `nope` was not defined"
        ),
        "{text}"
    );
}

/// A table that is not there is named with the region looked in, by the log and by the
/// registry; for an upload too, which is a failure (2), not the registry refusing it (1).
#[test]
fn a_missing_table_is_named_with_its_region() {
    let home = tempfile::tempdir().unwrap();
    let table = unique("no-such-table");
    let cases = [
        (LIST_CONFLICTS, &[][..]),
        (LIST_POLICIES, &["--bucket", "b"]),
        (UPLOAD_POLICY, &["--bucket", "b", "--cases", "1"]),
    ];
    for (command, more) in cases {
        let args = [
            command,
            &["--table", &table],
            more,
            &["--region", "eu-west-1"],
        ]
        .concat();
        let text = one_line_error(&run(&mut cli_on_moto(home.path()), &args), &args);
        assert!(
            text.contains(&format!("table {table} does not exist in region eu-west-1")),
            "{args:?}: {text}"
        );
    }
}

/// A bucket that is not there is named: the upload gets as far as storing the component.
#[test]
fn a_missing_bucket_is_named() {
    let home = tempfile::tempdir().unwrap();
    let table = unique("registry");
    create_table("eu-west-1", &table, "tenant", "entry");
    let bucket = unique("no-such-bucket");
    let args = [
        UPLOAD_POLICY,
        &["--table", &table, "--bucket", &bucket, "--cases", "1"],
        &["--region", "eu-west-1"],
    ]
    .concat();
    let text = one_line_error(&run(&mut cli_on_moto(home.path()), &args), &args);
    assert!(
        text.contains(&format!("bucket {bucket} does not exist (NoSuchBucket")),
        "{text}"
    );
}

/// `--region` picks the region over $AWS_REGION; `--profile` supplies the region and the
/// credentials from the config file, and `--region` beats the profile's region. (moto keeps
/// each region's tables apart, so the table is found only in the region it was made in.)
#[test]
fn region_and_profile_are_honoured() {
    let home = tempfile::tempdir().unwrap();
    let table = unique("conflicts");
    create_table("eu-west-1", &table, "pk", "sk");
    let list = [LIST_CONFLICTS, &["--table", &table]].concat();

    // $AWS_REGION alone: looked for in us-east-1, and said so.
    let out = run(
        cli_on_moto(home.path()).env("AWS_REGION", "us-east-1"),
        &list,
    );
    let text = one_line_error(&out, &list);
    assert!(
        text.contains("does not exist in region us-east-1"),
        "{text}"
    );
    // --region wins over $AWS_REGION.
    let args = [&list[..], &["--region", "eu-west-1"]].concat();
    no_conflicts(&run(
        cli_on_moto(home.path()).env("AWS_REGION", "us-east-1"),
        &args,
    ));

    // A profile with the region and credentials, and nothing in the environment but moto.
    std::fs::write(
        home.path().join("config"),
        "[profile moto-eu]\nregion = eu-west-1\naws_access_key_id = testing\n\
         aws_secret_access_key = testing\n",
    )
    .unwrap();
    let on_moto = |args: &[&str]| run(cli(home.path()).env("AWS_ENDPOINT_URL", moto()), args);
    let text = one_line_error(&on_moto(&list), &list);
    assert_eq!(
        text,
        "error: no AWS region: pass --region or set AWS_REGION"
    );
    no_conflicts(&on_moto(&[&list[..], &["--profile", "moto-eu"]].concat()));
    let args = [
        &list[..],
        &["--profile", "moto-eu", "--region", "us-east-1"],
    ]
    .concat();
    let text = one_line_error(&on_moto(&args), &args);
    assert!(
        text.contains("does not exist in region us-east-1"),
        "{text}"
    );
}

/// `--region` for a store in a directory would be ignored: refused instead.
#[test]
fn region_without_aws_is_refused() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("conflict-log")).unwrap();
    let args = ["conflicts", "list", "-t", "acme", "--region", "eu-west-1"];
    let text = one_line_error(&run(&mut cli(home.path()), &args), &args);
    assert_eq!(
        text,
        "error: --region applies only to --log aws, but the conflict log is the directory \
         conflict-log (the default; neither --log nor $TMF632_CONFLICT_LOG is set); give --log \
         aws, or leave out --region"
    );
}
