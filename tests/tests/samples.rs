//! The shipped sample conflicts are exactly what `integration_tests::samples::build` makes from
//! the official TMF632 examples (`BLESS=1` rewrites the file).

use integration_tests::samples;

#[test]
fn samples_are_current() {
    let text: String = samples::build()
        .iter()
        .map(|c| host_core::conflict::to_line(c) + "\n")
        .collect();
    let path = samples::samples_path();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is out of date: rerun with BLESS=1",
        path.display()
    );
}

#[test]
fn samples_parse_and_cover_the_cases() {
    let lines = host_core::conflict::parse_lines(
        &std::fs::read_to_string(samples::samples_path()).unwrap(),
    );
    assert!(lines.len() >= 12);
    for (n, parsed) in &lines {
        assert!(parsed.is_ok(), "line {n}: {parsed:?}");
    }
}
