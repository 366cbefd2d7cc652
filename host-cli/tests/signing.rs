//! `policy keygen`, `policy trust` and `policy upload --sign` from the command line: a tenant
//! that trusts a key refuses an unsigned upload with the reason, takes a signed one, and
//! lists the key; the key file is the signer's only.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_host-cli");

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_signed_upload_is_taken_and_an_unsigned_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = cli(d, &["policy", "keygen", "--out", "release-key"]);
    assert!(made.status.success(), "{}", text(&made));
    assert!(text(&made).starts_with("key "), "{}", text(&made));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("release-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret key is the owner's only");
    }
    let again = cli(d, &["policy", "keygen", "--out", "release-key"]);
    assert!(!again.status.success(), "keygen never overwrites a key");
    let reg = ["--tenant", "acme", "--registry", "reg"];
    // The registry exists once something was configured.
    let config = cli(
        d,
        &[&["policy", "config", "--set", "{}"][..], &reg].concat(),
    );
    assert!(config.status.success(), "{}", text(&config));
    let trust = cli(
        d,
        &[&["policy", "trust", "add", "release-key.pub"][..], &reg].concat(),
    );
    assert!(trust.status.success(), "{}", text(&trust));
    let unsigned = cli(
        d,
        &[&["policy", "upload", "default", "--cases", "4"][..], &reg].concat(),
    );
    assert_eq!(unsigned.status.code(), Some(1), "{}", text(&unsigned));
    assert!(
        text(&unsigned).contains("is not signed"),
        "{}",
        text(&unsigned)
    );
    let signed = cli(
        d,
        &[
            &[
                "policy",
                "upload",
                "default",
                "--cases",
                "4",
                "--sign",
                "release-key",
                "--activate",
            ][..],
            &reg,
        ]
        .concat(),
    );
    assert!(signed.status.success(), "{}", text(&signed));
    let listed = cli(d, &[&["policy", "trust", "list"][..], &reg].concat());
    let key_id = text(&made).split_whitespace().nth(1).unwrap().to_owned();
    assert!(text(&listed).contains(&key_id), "{}", text(&listed));
    let history = cli(d, &[&["policy", "history", "--json"][..], &reg].concat());
    assert!(
        text(&history).contains(&format!("key:{key_id}")),
        "the upload is the key's: {}",
        text(&history)
    );
}
