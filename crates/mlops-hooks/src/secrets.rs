//! The secret matcher: a rule table, one Aho-Corasick pass over each file for the rules'
//! keywords, and each rule's regex run only on the lines where one of its keywords occurs.
//!
//! Specific rules (cloud keys, tokens with a known prefix) fire on shape; the two broad rules
//! (`url-password`, `generic-secret`) also need the value to look random and not be a placeholder,
//! so that UUIDs, hashes, identifiers, `${DB_PASSWORD}` and documentation examples stay quiet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind, packed};
use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The inline pragmas that silence a secret finding on their line.
pub const ALLOW_PRAGMAS: [&str; 2] = ["mlops:allow-secret", "pragma: allowlist secret"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validate {
    /// A token with a known prefix: only placeholders are rejected.
    Token,
    /// As `Token`, and the random part must mix upper and lower case.
    MixedCase,
    /// A private key marker: a key body must follow.
    PrivateKey,
    /// A password in a URL.
    UrlPassword,
    /// `name = value`: the value must look random.
    Generic,
}

/// One secret rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable id (`aws-access-key-id`), used in findings, baselines and `disable-rules`.
    pub id: &'static str,
    /// What it finds.
    pub description: &'static str,
    /// What to do besides removing it from the file.
    pub rotate: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    validate: Validate,
}

/// The rules, in report order.
pub static RULES: &[Rule] = &[
    Rule {
        id: "private-key",
        description: "private key block",
        rotate: "generate a new key pair and revoke this one wherever it is authorised",
        keywords: &["PRIVATE KEY", "PuTTY-User-Key-File", "OpenVPN Static key"],
        pattern: r"(?:BEGIN (?:RSA |DSA |EC |OPENSSH |SSH2 ENCRYPTED |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?|PuTTY-User-Key-File-[23]|BEGIN OpenVPN Static key V1)",
        validate: Validate::PrivateKey,
    },
    Rule {
        id: "aws-access-key-id",
        description: "AWS access key id",
        rotate: "deactivate the key in AWS IAM and create a new one",
        keywords: &["AKIA", "ASIA", "ABIA", "ACCA"],
        pattern: r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        validate: Validate::Token,
    },
    Rule {
        id: "aws-secret-access-key",
        description: "AWS secret access key",
        rotate: "deactivate the key in AWS IAM and create a new one",
        keywords: &["secret_access_key", "secretaccesskey", "secret-access-key"],
        pattern: r#"(?i)secret[_\-]?access[_\-]?key["'`]?\s*(?::=|=>|=|:)\s*["'`]?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        validate: Validate::Generic,
    },
    Rule {
        id: "github-token",
        description: "GitHub token",
        rotate: "revoke it under GitHub Settings > Developer settings and create a new one",
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        pattern: r"\b((?:gh[pousr]_[A-Za-z0-9]{36,251})|(?:github_pat_[A-Za-z0-9_]{22,255}))\b",
        validate: Validate::Token,
    },
    Rule {
        id: "gitlab-token",
        description: "GitLab token",
        rotate: "revoke it in GitLab (User Settings > Access tokens) and create a new one",
        keywords: &["glpat-", "gldt-", "glrt-"],
        pattern: r"\b(gl(?:pat|dt|rt)-[A-Za-z0-9_\-]{20,})",
        validate: Validate::Token,
    },
    Rule {
        id: "slack-token",
        description: "Slack token",
        rotate: "revoke it in the Slack app settings and reinstall the app",
        keywords: &["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxe-"],
        pattern: r"\b(xox[baprse]-[0-9]{6,}-[A-Za-z0-9\-]{8,})",
        validate: Validate::Token,
    },
    Rule {
        id: "slack-webhook",
        description: "Slack incoming webhook URL",
        rotate: "delete the webhook in the Slack app settings and create a new one",
        keywords: &["hooks.slack.com"],
        pattern: r"(https://hooks\.slack\.com/services/T[A-Za-z0-9_]{6,}/B[A-Za-z0-9_]{6,}/[A-Za-z0-9_]{20,})",
        validate: Validate::Token,
    },
    Rule {
        id: "stripe-secret-key",
        description: "Stripe secret key",
        rotate: "roll the key in the Stripe dashboard (Developers > API keys)",
        keywords: &["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
        pattern: r"\b((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,99})\b",
        validate: Validate::Token,
    },
    Rule {
        id: "google-api-key",
        description: "Google API key",
        rotate: "delete or regenerate the key in Google Cloud Console > Credentials",
        keywords: &["AIza"],
        pattern: r"\b(AIza[0-9A-Za-z_\-]{35})(?:[^0-9A-Za-z_\-]|$)",
        validate: Validate::Token,
    },
    Rule {
        id: "openai-api-key",
        description: "OpenAI API key",
        rotate: "revoke it at the OpenAI platform's API keys page and create a new one",
        keywords: &["T3BlbkFJ"],
        pattern: r"\b(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}T3BlbkFJ[A-Za-z0-9_\-]{16,})",
        validate: Validate::Token,
    },
    Rule {
        id: "anthropic-api-key",
        description: "Anthropic API key",
        rotate: "revoke it in the Anthropic console and create a new one",
        keywords: &["sk-ant-"],
        pattern: r"\b(sk-ant-(?:api|admin|oat)[0-9]{2}-[A-Za-z0-9_\-]{80,})",
        validate: Validate::Token,
    },
    Rule {
        id: "huggingface-token",
        description: "Hugging Face token",
        rotate: "invalidate it under Hugging Face Settings > Access Tokens and create a new one",
        keywords: &["hf_"],
        pattern: r"\b(hf_[A-Za-z]{34})\b",
        validate: Validate::MixedCase,
    },
    Rule {
        id: "jwt",
        description: "JSON Web Token",
        rotate: "revoke the session or signing key that issued it",
        keywords: &["eyJ"],
        pattern: r"\b(eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,})",
        validate: Validate::Token,
    },
    Rule {
        id: "url-password",
        description: "password in a URL",
        rotate: "change the password on the server it opens",
        keywords: &["://"],
        pattern: r#"\b([A-Za-z][A-Za-z0-9+.\-]{1,15})://([^\s:@/?#"'`<>]{0,64}):([^\s@/?#"'`<>]{1,128})@([A-Za-z0-9.\-_%\[\]]{1,255})"#,
        validate: Validate::UrlPassword,
    },
    Rule {
        id: "generic-secret",
        description: "hard-coded secret",
        rotate: "change it where it is used, then read it from the environment or a secrets manager",
        keywords: &[
            "password",
            "passwd",
            "pwd",
            "secret",
            "token",
            "api_key",
            "apikey",
            "api-key",
            "access_key",
            "accesskey",
            "access-key",
            "private_key",
            "signing_key",
            "encryption_key",
            "master_key",
            "credential",
        ],
        pattern: r#"(?i)([a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|secret[_\-]?key|auth[_\-]?key|private[_\-]?key|signing[_\-]?key|encryption[_\-]?key|master[_\-]?key|credentials?))["'`]?[ \t]*(?::=|=>|=|:)[ \t]*(?:"([^"\r\n]{1,300})"|'([^'\r\n]{1,300})'|`([^`\r\n]{1,300})`|([^\s"'`,;#()\[\]{}<>]{1,300}))"#,
        validate: Validate::Generic,
    },
];

/// A secret found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    /// The rule that fired.
    pub rule: &'static Rule,
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column of the secret.
    pub column: usize,
    /// The secret itself (never printed; used for the fingerprint).
    pub secret: String,
    /// A redacted rendering for messages.
    pub redacted: String,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Rule {}

impl SecretMatch {
    /// The baseline fingerprint: BLAKE3 of rule, path and secret. It does not depend on the line,
    /// so it survives the line moving.
    pub fn fingerprint(&self, path: &str) -> String {
        fingerprint(self.rule.id, path, &self.secret)
    }
}

fn fingerprint(rule: &str, path: &str, secret: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(rule.as_bytes());
    h.update(&[0]);
    h.update(path.as_bytes());
    h.update(&[0]);
    h.update(secret.as_bytes());
    h.finalize().to_hex()[..32].to_owned()
}

/// The compiled rule set. Build once, share across threads.
#[derive(Debug)]
pub struct SecretScanner {
    keywords: AhoCorasick,
    /// The keywords (lowercase) for Teddy, when this CPU has the SIMD instructions it needs.
    first_keyword: Option<packed::Searcher>,
    /// For each keyword, the rules (bit mask over `RULES`) it may start.
    keyword_rules: Vec<u32>,
    regexes: Vec<Option<Regex>>,
    body: Regex,
    /// [`ALLOW_PRAGMAS`], compiled once.
    pragmas: Vec<memchr::memmem::Finder<'static>>,
}

const GENERIC: usize = 14;
const URL: usize = 13;
const AWS_SECRET: usize = 2;
/// The rules whose match is `NAME <op> value` with NAME ending in one of [`ASSIGNED_WORDS`].
const ASSIGNMENT_RULES: u32 = (1 << GENERIC) | (1 << AWS_SECRET);
/// How the names of [`ASSIGNMENT_RULES`] end (every alternative of their patterns' name part).
const ASSIGNED_WORDS: [&[u8]; 8] = [
    b"password",
    b"passwd",
    b"pwd",
    b"secret",
    b"token",
    b"key",
    b"credential",
    b"credentials",
];

/// Whether some `:` or `=` in `line` follows one of [`ASSIGNED_WORDS`] (any case), with only an
/// optional quote and whitespace between: a necessary condition for [`ASSIGNMENT_RULES`] to
/// match (`:=` and `=>` start with `:` or `=`).
fn has_assignment_after_keyword(line: &[u8]) -> bool {
    memchr::memchr2_iter(b':', b'=', line).any(|op| {
        let mut end = op;
        while end > 0 && line[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        if end > 0 && matches!(line[end - 1], b'"' | b'\'' | b'`') {
            end -= 1;
        }
        let name = &line[..end];
        ASSIGNED_WORDS
            .iter()
            .any(|w| name.len() >= w.len() && name[name.len() - w.len()..].eq_ignore_ascii_case(w))
    })
}

impl SecretScanner {
    /// All rules except those whose ids are in `disabled`.
    ///
    /// # Errors
    /// Never in practice: the patterns are fixed and tested; a regex error is reported as a
    /// configuration error rather than a panic.
    pub fn new(disabled: &[String]) -> Result<Self> {
        let mut words: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<u32> = Vec::new();
        for (i, rule) in RULES.iter().enumerate() {
            if disabled.iter().any(|d| d == rule.id) {
                continue;
            }
            for kw in rule.keywords {
                let lower = kw.to_ascii_lowercase();
                match words.iter().position(|w| *w == lower) {
                    Some(at) => keyword_rules[at] |= 1 << i,
                    None => {
                        words.push(lower);
                        keyword_rules.push(1 << i);
                    }
                }
            }
        }
        // A full DFA: one table step per byte, several times faster than the default NFA for
        // an overlapping, case-insensitive search over ~50 short keywords (a few hundred states).
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&words)
            .map_err(|e| internal(format!("secret keywords: {e}")))?;
        let regexes = RULES
            .iter()
            .map(|r| {
                if disabled.iter().any(|d| d == r.id) {
                    return Ok(None);
                }
                Regex::new(&format!("(?-u){}", r.pattern))
                    .map(Some)
                    .map_err(|e| internal(format!("secret rule {}: {e}", r.id)))
            })
            .collect::<Result<Vec<_>>>()?;
        let body = Regex::new(r"(?-u)[A-Za-z0-9+/=]{32,}")
            .map_err(|e| internal(format!("key body: {e}")))?;
        let first_keyword = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&words)
            .build();
        Ok(Self {
            keywords,
            first_keyword,
            keyword_rules,
            regexes,
            body,
            pragmas: ALLOW_PRAGMAS
                .iter()
                .map(|p| memchr::memmem::Finder::new(p.as_bytes()))
                .collect(),
        })
    }

    /// Every secret in `data`, in file order.
    pub fn scan(&self, data: &[u8]) -> Vec<SecretMatch> {
        match &self.first_keyword {
            Some(first) => self.scan_by_line(first, data),
            None => self.scan_overlapping(data),
        }
    }

    /// The SIMD path: Teddy finds the first keyword at or after a position in the
    /// ASCII-lowercased text (the same matches as the case-insensitive automaton); that line's
    /// rule mask comes from the automaton run over the rest of the line alone; the search
    /// resumes after the line.
    fn scan_by_line(&self, first: &packed::Searcher, data: &[u8]) -> Vec<SecretMatch> {
        let mut found = Vec::new();
        let mut line_counter = LineCounter::default();
        let lower = data.to_ascii_lowercase();
        let mut at = 0;
        while at < lower.len() {
            let Some(m) = first.find_in(&lower, aho_corasick::Span::from(at..lower.len())) else {
                break;
            };
            let pos = m.start();
            let start = memchr::memrchr(b'\n', &data[..pos]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            // No keyword starts before `pos` on this line (Teddy's match is the leftmost).
            let mask = self
                .keywords
                .find_overlapping_iter(&data[pos..end])
                .fold(0, |acc, k| acc | self.keyword_rules[k.pattern().as_usize()]);
            self.scan_line(data, start, end, mask, &mut line_counter, &mut found);
            at = end + 1;
        }
        found
    }

    /// The portable path: one overlapping pass of the automaton over the whole text.
    fn scan_overlapping(&self, data: &[u8]) -> Vec<SecretMatch> {
        let mut found = Vec::new();
        // (line start, line end, rule mask) of the line being collected.
        let mut current: Option<(usize, usize, u32)> = None;
        let mut line_counter = LineCounter::default();
        for m in self.keywords.find_overlapping_iter(data) {
            let mask = self.keyword_rules[m.pattern().as_usize()];
            let pos = m.start();
            if let Some((start, end, ref mut acc)) = current {
                if pos >= start && pos < end.max(start + 1) {
                    *acc |= mask;
                    continue;
                }
                self.scan_line(data, start, end, *acc, &mut line_counter, &mut found);
            }
            let start = memchr::memrchr(b'\n', &data[..pos]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            current = Some((start, end, mask));
        }
        if let Some((start, end, acc)) = current {
            self.scan_line(data, start, end, acc, &mut line_counter, &mut found);
        }
        found
    }

    fn scan_line(
        &self,
        data: &[u8],
        start: usize,
        end: usize,
        mask: u32,
        lines: &mut LineCounter,
        found: &mut Vec<SecretMatch>,
    ) {
        let line = &data[start..end];
        let mut mask = mask;
        // The assignment rules need `…key =`, `…token:` and the like; words such as "token" in
        // prose flag many lines where no assignment follows, and the regex is skipped there.
        if mask & ASSIGNMENT_RULES != 0 && !has_assignment_after_keyword(line) {
            mask &= !ASSIGNMENT_RULES;
        }
        if mask == 0 || self.pragmas.iter().any(|p| p.find(line).is_some()) {
            return;
        }
        let first_new = found.len();
        let mut spans: Vec<(usize, usize, usize)> = Vec::new(); // (rule, start, end) in line
        for (i, rule) in RULES.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let Some(re) = &self.regexes[i] else { continue };
            for caps in re.captures_iter(line) {
                let whole = caps.get(0).map_or(0..0, |m| m.range());
                let secret_group = match rule.validate {
                    Validate::UrlPassword => caps.get(3),
                    Validate::Generic if i == GENERIC => caps
                        .get(2)
                        .or_else(|| caps.get(3))
                        .or_else(|| caps.get(4))
                        .or_else(|| caps.get(5)),
                    Validate::PrivateKey => caps.get(0),
                    _ => caps.get(1),
                };
                let Some(sec) = secret_group else { continue };
                let value = String::from_utf8_lossy(sec.as_bytes()).into_owned();
                let (secret, redacted) = match rule.validate {
                    Validate::Token => {
                        if is_placeholder(&value) || distinct_chars(&value) < 6 {
                            continue;
                        }
                        (value.clone(), redact(&value))
                    }
                    Validate::MixedCase => {
                        let body = &value[3..];
                        if is_placeholder(&value)
                            || !body.bytes().any(|b| b.is_ascii_uppercase())
                            || !body.bytes().any(|b| b.is_ascii_lowercase())
                        {
                            continue;
                        }
                        (value.clone(), redact(&value))
                    }
                    Validate::PrivateKey => {
                        let after = start + sec.end();
                        let window = &data[after..data.len().min(after + 4096)];
                        let window =
                            memchr::memmem::find(window, b"END ").map_or(window, |i| &window[..i]);
                        let Some(body) = self.body.find(window) else {
                            continue;
                        };
                        let body = String::from_utf8_lossy(body.as_bytes()).into_owned();
                        (body, format!("`{value}`"))
                    }
                    Validate::UrlPassword => {
                        let user = caps
                            .get(2)
                            .map_or("", |m| std::str::from_utf8(m.as_bytes()).unwrap_or(""));
                        let host = caps
                            .get(4)
                            .map_or("", |m| std::str::from_utf8(m.as_bytes()).unwrap_or(""));
                        if !url_password_is_real(user, &value, host) {
                            continue;
                        }
                        let scheme = caps
                            .get(1)
                            .map_or("", |m| std::str::from_utf8(m.as_bytes()).unwrap_or(""));
                        (value.clone(), format!("{scheme}://{user}:****@{host}"))
                    }
                    Validate::Generic => {
                        if !looks_random(&value) {
                            continue;
                        }
                        let key = if i == GENERIC {
                            caps.get(1).map_or(String::new(), |m| {
                                String::from_utf8_lossy(m.as_bytes()).into_owned()
                            })
                        } else {
                            "secret access key".to_owned()
                        };
                        (value.clone(), format!("{key} = {}", redact(&value)))
                    }
                };
                spans.push((i, sec.start(), sec.end().max(whole.end.min(sec.end()))));
                let line_no = lines.line_of(data, start);
                found.push(SecretMatch {
                    rule,
                    line: line_no,
                    column: sec.start() + 1,
                    secret,
                    redacted,
                });
            }
        }
        // A broad rule does not repeat what a specific rule already said about the same value.
        if spans.len() > 1 {
            let specific: Vec<(usize, usize)> = spans
                .iter()
                .filter(|(r, _, _)| *r != GENERIC && *r != URL)
                .map(|(_, s, e)| (*s, *e))
                .collect();
            let mut idx = 0;
            found.retain(|_| {
                let keep = if idx < first_new {
                    true
                } else {
                    let (r, s, e) = spans[idx - first_new];
                    !((r == GENERIC || r == URL)
                        && specific.iter().any(|(ss, se)| s < *se && *ss < e))
                };
                idx += 1;
                keep
            });
        }
    }
}

fn internal(message: String) -> Error {
    Error::Config {
        path: PathBuf::from("<secret rules>"),
        line: 1,
        column: 1,
        message,
    }
}

/// Counts lines incrementally: offsets asked for only grow, so the whole file is scanned once.
#[derive(Debug, Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    fn line_of(&mut self, data: &[u8], offset: usize) -> usize {
        if offset < self.offset {
            self.offset = 0;
            self.line = 0;
        }
        self.line += memchr::memchr_iter(b'\n', &data[self.offset..offset]).count();
        self.offset = offset;
        self.line + 1
    }
}

/// `abcd…(40 chars)`: enough to find it, never the whole secret.
pub fn redact(secret: &str) -> String {
    let n = secret.chars().count();
    let shown: String = secret.chars().take(if n >= 16 { 4 } else { 2 }).collect();
    format!("{shown}…({n} chars)")
}

fn distinct_chars(s: &str) -> usize {
    let mut seen = [false; 256];
    s.bytes()
        .filter(|b| !std::mem::replace(&mut seen[*b as usize], true))
        .count()
}

const PLACEHOLDER_WORDS: &[&str] = &[
    "example",
    "sample",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "xxxx",
    "****",
    "....",
    "dummy",
    "redacted",
    "replace",
    "insert",
    "your_",
    "your-",
    "yourtoken",
    "yourpassword",
    "yourkey",
    "fake",
    "<",
    ">",
    "${",
    "{{",
    "}}",
    "%(",
    "%s",
    "$(",
    "todo",
    "fixme",
    "0000000",
    "1234567",
    "abcdef",
];

/// Secrets published in vendors' documentation (jwt.io's sample token signature, Stripe's
/// sample test key): they are examples, not leaks.
const DOCUMENTED_EXAMPLES: &[&str] = &[
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
];

fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
        || DOCUMENTED_EXAMPLES.iter().any(|e| value.contains(e))
        || (value.starts_with('{') && value.ends_with('}'))
        || lower.starts_with('$')
        || lower.starts_with("env:")
        || lower.starts_with("env.")
        || lower.starts_with("os.")
        || lower.starts_with("secrets.")
        || lower.starts_with("vault:")
        || lower.starts_with("ref+")
}

fn is_uuid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn shannon(v: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in v.bytes() {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// The randomness test of the broad rules: long enough, mixed character classes, high entropy,
/// and not a UUID, hash, number, identifier, path, URL or placeholder.
pub fn looks_random(v: &str) -> bool {
    let n = v.len();
    if !(8..=300).contains(&n) || is_placeholder(v) {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    if [
        "password",
        "passwd",
        "secret",
        "token",
        "none",
        "null",
        "true",
        "false",
        "undefined",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return false;
    }
    if is_uuid(v) || v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return false;
    }
    if v.contains("://")
        || v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("../")
        || v.starts_with('~')
    {
        return false;
    }
    let has_digit = v.bytes().any(|b| b.is_ascii_digit());
    let has_upper = v.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = v.bytes().any(|b| b.is_ascii_lowercase());
    let has_other = v.bytes().any(|b| !b.is_ascii_alphanumeric());
    if !(has_upper || has_lower) || !(has_digit || has_other) {
        return false;
    }
    // Identifiers, names and dotted references: `settings.SECRET_KEY`, `AWS_KEY_2`,
    // `get_token`, `feature-store-credentials`.
    let wordish = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    let env_name = v
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && v.contains('_');
    if wordish && (!has_digit || env_name) {
        return false;
    }
    // File names and relative paths: `certs/server.key`, `model-v2.onnx`.
    if let Some((stem, ext)) = v.rsplit_once('.')
        && (1..=5).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_lowercase())
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/.".contains(&b))
    {
        return false;
    }
    let classes = [has_digit, has_upper, has_lower, has_other]
        .iter()
        .filter(|x| **x)
        .count();
    let entropy = shannon(v);
    let needed = ((n as f64).log2() * 0.8).min(3.2);
    classes >= 2 && entropy >= needed && distinct_chars(v) >= 6
}

const DEFAULT_PASSWORDS: &[&str] = &[
    "password",
    "pass",
    "passwd",
    "pwd",
    "secret",
    "admin",
    "root",
    "guest",
    "postgres",
    "mysql",
    "user",
    "test",
    "redis",
    "minio",
    "minioadmin",
    "airflow",
    "mlflow",
    "default",
];

fn url_password_is_real(user: &str, password: &str, host: &str) -> bool {
    let lower = password.to_ascii_lowercase();
    !(password.is_empty()
        || password == user
        || is_placeholder(password)
        || password.starts_with('%')
        || DEFAULT_PASSWORDS.contains(&lower.as_str())
        || distinct_chars(password) < 3
        || host.to_ascii_lowercase().contains("example")
        || host.is_empty())
}

/// One accepted finding in the baseline file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineEntry {
    /// The rule id.
    pub rule: String,
    /// The file, repository-relative.
    pub path: String,
    /// The finding's fingerprint (rule, path, hash of the secret).
    pub fingerprint: String,
}

/// Secret findings accepted on purpose, kept in a TOML file under version control.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// The accepted findings.
    #[serde(default, rename = "secret")]
    pub entries: BTreeSet<BaselineEntry>,
}

impl Baseline {
    /// Reads a baseline; a missing file is an empty baseline.
    ///
    /// # Errors
    /// [`Error::Baseline`] with line and column for a malformed file, [`Error::Io`] otherwise.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        toml::from_str(&text).map_err(|e| {
            let (line, col) = e
                .span()
                .map_or((1, 1), |s| crate::config::line_col(&text, s.start));
            Error::Baseline {
                path: path.to_owned(),
                message: format!("line {line}, column {col}: {}", e.message().trim_end()),
            }
        })
    }

    /// Whether a finding with this fingerprint is accepted.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.entries.iter().any(|e| e.fingerprint == fingerprint)
    }

    /// Writes the baseline atomically (temporary file, then rename).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let body = toml::to_string(self).map_err(|e| Error::Baseline {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# Secret findings accepted on purpose (mlops hooks run --update-baseline).\n\
             # An entry matches by rule, path and a hash of the secret, wherever the line moves.\n\n{body}"
        );
        crate::fix::write_atomic(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        let s = SecretScanner::new(&[]).unwrap();
        s.scan(text.as_bytes()).iter().map(|m| m.rule.id).collect()
    }

    #[test]
    fn rule_bits_fit_the_mask() {
        assert!(RULES.len() <= 32);
        assert_eq!(RULES[GENERIC].id, "generic-secret");
        assert_eq!(RULES[URL].id, "url-password");
        assert_eq!(RULES[AWS_SECRET].id, "aws-secret-access-key");
    }

    proptest::proptest! {
        /// Skipping the assignment rules on lines without `<name word> <op>` never hides a match.
        #[test]
        fn assignment_gate_never_hides_a_match(parts in proptest::collection::vec(
            proptest::sample::select(&[
                "password", "PassWd", "pwd", "secret", "Token", "api_key", "api-KEY", "apikey",
                "access_key", "secret_access_key", "SecretAccessKey", "auth-key", "credential",
                "credentials", "x", "_", ".", "-", "\"", "'", "`", " ", "\t", ":", "=", ":=", "=>",
                "v4lue!9Zq", "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEYa", "\\", "#", ",", "\u{b}",
            ][..]),
            0..12,
        )) {
            let line = parts.concat();
            let scanner = SecretScanner::new(&[]).unwrap();
            for rule in [GENERIC, AWS_SECRET] {
                let re = scanner.regexes[rule].as_ref().unwrap();
                if re.is_match(line.as_bytes()) {
                    proptest::prop_assert!(has_assignment_after_keyword(line.as_bytes()), "{line:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// The SIMD line-by-line search finds exactly what the overlapping automaton finds.
        #[test]
        fn teddy_path_equals_the_automaton(parts in proptest::collection::vec(
            proptest::sample::select(&[
                "password = ", "PassWord: ", "TOKEN=", "Api_Key: ", "secret", "x", " ", "\n",
                "\r\n", "'", "\"", "ghp_", "GHP_", "R4nd0mT0k3nV4lu3xQ9zW2yL7kP5mN8bC1dF",
                "AKIAZ7QWERTY2345UIOP", "akia", "https://u:Pa55w0rd!x@db.internal/x", "://",
                "-----BEGIN RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEAq8Zr2LmX9vTb4NcWq8Zr2LmX9vTb",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.q8Zr2LmX9vTb4NcWq8Zr2L",
                "hf_", "xoxb-", "sk_live_", "AIza", "mlops:allow-secret", "\u{e9}", "\0",
            ][..]),
            0..40,
        )) {
            let text = parts.concat();
            let scanner = SecretScanner::new(&[]).unwrap();
            let Some(first) = &scanner.first_keyword else { return Ok(()) };
            proptest::prop_assert_eq!(
                scanner.scan_by_line(first, text.as_bytes()),
                scanner.scan_overlapping(text.as_bytes())
            );
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn teddy_is_used_where_the_cpu_has_it() {
        let scanner = SecretScanner::new(&[]).unwrap();
        if std::arch::is_x86_feature_detected!("ssse3") {
            assert!(scanner.first_keyword.is_some());
        }
    }

    #[test]
    fn assignment_gate_sees_every_operator_and_quote() {
        for line in [
            "db_password = 'x'",
            "TOKEN: abc",
            "\"api_key\": \"v\"",
            "auth-Key := v",
            "creds.Credentials => v",
            "SECRET`\t= v",
            "prose first, then pwd=v",
        ] {
            assert!(has_assignment_after_keyword(line.as_bytes()), "{line}");
        }
        for line in [
            "the token is in the vault",
            "token_budget = 10",
            "see: token",
            "key_path = x",
        ] {
            assert!(!has_assignment_after_keyword(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn specific_rules_win_over_the_generic_one() {
        assert_eq!(
            ids("GITHUB_TOKEN = \"ghp_R4nd0mT0k3nV4lu3xQ9zW2yL7kP5mN8bC1dF\"\n"),
            vec!["github-token"]
        );
    }

    #[test]
    fn lines_and_columns_are_reported() {
        let s = SecretScanner::new(&[]).unwrap();
        let text = "a\nb\nkey = AKIAZ7QWERTY2345UIOP\n";
        let m = s.scan(text.as_bytes());
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].line, m[0].column), (3, 7));
        assert_eq!(m[0].redacted, "AKIA…(20 chars)");
    }

    #[test]
    fn pragma_silences_the_line_only() {
        let text = "a = 'AKIAZ7QWERTY2345UIOP'  # mlops:allow-secret\nb = 'AKIAZ7QWERTY2345UIOQ'\n";
        assert_eq!(ids(text), vec!["aws-access-key-id"]);
    }

    #[test]
    fn disabled_rules_do_not_fire() {
        let s = SecretScanner::new(&["aws-access-key-id".to_owned()]).unwrap();
        assert!(s.scan(b"AKIAZ7QWERTY2345UIOP").is_empty());
    }

    #[test]
    fn fingerprint_ignores_the_line_but_not_the_path() {
        let s = SecretScanner::new(&[]).unwrap();
        let a = &s.scan(b"x = 'AKIAZ7QWERTY2345UIOP'\n")[0];
        let b = &s.scan(b"\n\n\ny = 'AKIAZ7QWERTY2345UIOP'\n")[0];
        assert_eq!(a.fingerprint("p.py"), b.fingerprint("p.py"));
        assert_ne!(a.fingerprint("p.py"), a.fingerprint("q.py"));
    }

    #[test]
    fn randomness_test() {
        assert!(looks_random("q8Zr2LmX9vTb4NcW"));
        assert!(!looks_random("550e8400-e29b-41d4-a716-446655440000"));
        assert!(!looks_random("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
        assert!(!looks_random("settings.SECRET_KEY"));
        assert!(!looks_random("certs/server.key"));
        assert!(!looks_random("12345678901"));
    }

    #[test]
    fn baseline_round_trips_and_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        assert_eq!(Baseline::load(&path).unwrap(), Baseline::default());
        let mut b = Baseline::default();
        b.entries.insert(BaselineEntry {
            rule: "jwt".into(),
            path: "a".into(),
            fingerprint: "f".into(),
        });
        b.save(&path).unwrap();
        let back = Baseline::load(&path).unwrap();
        assert!(back.contains("f"));
        std::fs::write(&path, "[[secret]]\nrule = 1\n").unwrap();
        let err = Baseline::load(&path).unwrap_err().to_string();
        assert!(err.contains("malformed secrets baseline: line 2"), "{err}");
    }
}
