//! CI refuses unformatted code and clippy warnings before it runs the tests.

#[test]
fn ci_checks_format_and_lints_before_the_tests() {
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    let position = |command: &str| {
        script
            .lines()
            .position(|l| l.trim() == command)
            .unwrap_or_else(|| panic!(".ci/run does not run `{command}` on a line of its own"))
    };
    let fmt = position("cargo fmt --check");
    let clippy = position("cargo clippy --all-targets --locked -- -D warnings");
    let tests = position("eval \"$TEST_COMMAND\"");
    assert!(
        fmt < tests && clippy < tests,
        "the gates must run before the tests"
    );
    assert!(
        script.lines().any(|l| l.trim() == "set -euo pipefail"),
        "a failing gate must stop the script"
    );
}
