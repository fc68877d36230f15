//! The secret rules against the corpus in `testdata/hooks/secrets/`: every true positive is
//! found by exactly its rule, no false positive fires.

use std::path::PathBuf;

use mlops_hooks::{RULES, SecretScanner};
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    rule: String,
    path: String,
    #[serde(default)]
    why: String,
    text: String,
}

fn load(name: &str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hooks/secrets")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("corpus file");
    toml::from_str::<Corpus>(&text).expect("corpus parses").case
}

#[test]
fn every_true_positive_is_found_by_its_rule_only() {
    let scanner = SecretScanner::new(&[]).unwrap();
    let cases = load("positives.toml");
    let mut failures = Vec::new();
    for c in &cases {
        let found: Vec<&str> = scanner
            .scan(c.text.as_bytes())
            .iter()
            .map(|m| m.rule.id)
            .collect();
        if found != [c.rule.as_str()] {
            failures.push(format!(
                "{} ({}): expected [{}], found {found:?}",
                c.path, c.rule, c.rule
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every rule has at least one true positive.
    for rule in RULES {
        assert!(
            cases.iter().any(|c| c.rule == rule.id),
            "no true positive for {}",
            rule.id
        );
    }
}

#[test]
fn no_false_positive_fires() {
    let scanner = SecretScanner::new(&[]).unwrap();
    let cases = load("negatives.toml");
    assert!(
        cases.len() >= 30,
        "the corpus keeps at least 30 realistic false positives"
    );
    let mut failures = Vec::new();
    for c in &cases {
        assert!(
            RULES.iter().any(|r| r.id == c.rule),
            "unknown rule {}",
            c.rule
        );
        let found: Vec<String> = scanner
            .scan(c.text.as_bytes())
            .iter()
            .map(|m| format!("{} {}", m.rule.id, m.redacted))
            .collect();
        if !found.is_empty() {
            failures.push(format!("{} ({}): {found:?}", c.path, c.why));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn secrets_are_never_printed_whole() {
    let scanner = SecretScanner::new(&[]).unwrap();
    for c in load("positives.toml") {
        for m in scanner.scan(c.text.as_bytes()) {
            assert!(
                !m.redacted.contains(&m.secret),
                "{}: {} shows the secret",
                c.path,
                m.redacted
            );
        }
    }
}
