//! A fast proof of well-formedness for the plain block-YAML subset that most configuration files
//! are written in.
//!
//! [`proves_valid`] answers `true` only for documents it can show the full check (serde_yaml on
//! libyaml, with the duplicate-key rule of `syntax`) accepts. Anything it is not sure of — every
//! invalid document, and valid YAML outside the subset — answers `false`, and the caller runs the
//! full parser, which then gives the verdict, the message and the line and column. So a `false`
//! is never a finding by itself, and findings are exactly those of the full parser.
//!
//! The subset, line by line:
//! - bytes: printable ASCII and `\n` only (no tab, no `\r`, no control or non-ASCII byte);
//! - one document, no directives, `---`, anchors, aliases, tags or flow mappings;
//! - block mappings of plain keys (`[A-Za-z_][A-Za-z0-9_./-]*`, not a null or boolean word),
//!   each key at exactly its mapping's indentation, no key twice in one mapping;
//! - block sequences (`- value`, `- key: value` starting a compact mapping), also at the
//!   indentation of their parent key;
//! - values on one line: a plain scalar without `: ` (a ` #` starts a comment), a double-quoted
//!   scalar with simple escapes, a single-quoted scalar, or a flow sequence of such scalars;
//! - block scalars (`|`, `>`, with `-`/`+` chomping, no explicit indentation) whose lines are
//!   empty or indented at least as the first one;
//! - comment lines and empty lines anywhere.
//!
//! Nesting is kept far below serde_yaml's recursion limit.

/// Blocks nested deeper than this are left to the full parser.
const MAX_DEPTH: usize = 64;
/// Flow sequences nested deeper than this (inside at most `MAX_DEPTH` blocks) are left to the
/// full parser.
const MAX_FLOW_DEPTH: usize = 16;
// serde_yaml stops at 128 nested collections: together the two limits stay below it.
const _: () = assert!(MAX_DEPTH + MAX_FLOW_DEPTH < 128);
/// Longer keys are left to the full parser (libyaml's simple keys stop at 1024 characters).
const MAX_KEY: usize = 512;
/// Plain keys that serde_yaml resolves to null or a boolean: `null` and `Null` are the same key
/// there, so these are left to the full parser.
const NON_STRING_KEYS: [&[u8]; 9] = [
    b"null", b"Null", b"NULL", b"true", b"True", b"TRUE", b"false", b"False", b"FALSE",
];

/// `true` when `data` is one well-formed YAML document of the subset, without duplicate keys;
/// `false` when it is not, or when it cannot tell.
pub(crate) fn proves_valid(data: &[u8]) -> bool {
    if !printable_ascii(data) {
        return false;
    }
    let mut v = Validator::default();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len())) {
        if !v.line(&data[start..end]) {
            return false;
        }
        start = end + 1;
    }
    v.finish()
}

/// Every byte is `\n` or printable ASCII (branch-free per chunk, so it vectorises).
fn printable_ascii(data: &[u8]) -> bool {
    data.chunks(64).all(|chunk| {
        chunk.iter().fold(true, |ok, &b| {
            ok & ((0x20..0x7f).contains(&b) | (b == b'\n'))
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    /// A block sequence; `indentless` when it sits at its parent key's indentation.
    Seq {
        indentless: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Block {
    kind: Kind,
    indent: usize,
    /// Where this mapping's keys start in `Validator::keys`.
    keys_from: usize,
}

#[derive(Debug, Clone, Copy)]
struct BlockScalar {
    /// Indentation of the mapping whose key holds the scalar: content lines are deeper.
    parent: usize,
    /// Indentation of the first content line, once seen.
    content: Option<usize>,
}

#[derive(Debug, Default)]
struct Validator<'a> {
    blocks: Vec<Block>,
    keys: Vec<&'a [u8]>,
    /// After `key:` with nothing else on the line: the indentation of its mapping (the value
    /// may be a nested block on the next lines).
    pending: Option<usize>,
    scalar: Option<BlockScalar>,
    root_seen: bool,
}

impl<'a> Validator<'a> {
    fn line(&mut self, line: &'a [u8]) -> bool {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let body = &line[indent..];
        if let Some(bs) = &mut self.scalar {
            if line.is_empty() {
                return true;
            }
            if body.is_empty() {
                return false; // an all-space line: libyaml's rules for these are subtle
            }
            if indent > bs.parent {
                return match bs.content {
                    None => {
                        bs.content = Some(indent);
                        true
                    }
                    Some(c) => indent >= c,
                };
            }
            self.scalar = None; // the scalar ended; this line belongs to the blocks
        }
        if body.is_empty() || body[0] == b'#' {
            return true;
        }
        let dash = is_dash(body);
        if let Some(m) = self.pending.take() {
            if indent > m {
                let kind = if dash {
                    Kind::Seq { indentless: false }
                } else {
                    Kind::Map
                };
                if !self.open(kind, indent) {
                    return false;
                }
            } else if indent == m && dash {
                if !self.open(Kind::Seq { indentless: true }, indent) {
                    return false;
                }
                return self.item(body, indent);
            }
            // Otherwise the key's value was null.
        }
        while let Some(top) = self.blocks.last() {
            let ends = top.indent > indent
                || (top.kind == Kind::Seq { indentless: true } && top.indent == indent && !dash);
            if !ends {
                break;
            }
            if !self.close() {
                return false;
            }
        }
        let kind = match self.blocks.last() {
            None => {
                if self.root_seen || indent != 0 {
                    return false;
                }
                self.root_seen = true;
                let kind = if dash {
                    Kind::Seq { indentless: false }
                } else {
                    Kind::Map
                };
                if !self.open(kind, 0) {
                    return false;
                }
                kind
            }
            Some(top) if top.indent != indent => return false,
            Some(top) => top.kind,
        };
        match kind {
            Kind::Map => self.entry(body, indent),
            Kind::Seq { .. } => dash && self.item(body, indent),
        }
    }

    fn open(&mut self, kind: Kind, indent: usize) -> bool {
        if self.blocks.len() >= MAX_DEPTH {
            return false;
        }
        self.blocks.push(Block {
            kind,
            indent,
            keys_from: self.keys.len(),
        });
        true
    }

    /// Closes the innermost block: a mapping must not repeat a key.
    fn close(&mut self) -> bool {
        let Some(b) = self.blocks.pop() else {
            return false;
        };
        let keys = &mut self.keys[b.keys_from..];
        let unique = match keys.len() {
            0 | 1 => true,
            2..=8 => (1..keys.len()).all(|i| !keys[..i].contains(&keys[i])),
            _ => {
                keys.sort_unstable();
                keys.windows(2).all(|w| w[0] != w[1])
            }
        };
        self.keys.truncate(b.keys_from);
        unique
    }

    /// `key: value`, `key:` (a nested block or null follows) or `key: |` in the mapping whose
    /// keys sit at `indent`.
    fn entry(&mut self, body: &'a [u8], indent: usize) -> bool {
        let Some(k) = key_len(body) else {
            return false;
        };
        self.keys.push(&body[..k]);
        let rest = trim_start(&body[k + 1..]);
        match rest.first() {
            None | Some(b'#') => {
                self.pending = Some(indent);
                true
            }
            Some(b'|' | b'>') => {
                let header = match rest.get(1) {
                    Some(b'-' | b'+') => &rest[2..],
                    _ => &rest[1..],
                };
                if !tail_ok(header) {
                    return false;
                }
                self.scalar = Some(BlockScalar {
                    parent: indent,
                    content: None,
                });
                true
            }
            Some(_) => value(rest),
        }
    }

    /// `- value` or `- key: ...` (a compact mapping) in the sequence at `indent`.
    fn item(&mut self, body: &'a [u8], indent: usize) -> bool {
        let after = &body[1..];
        let rest = trim_start(after);
        match rest.first() {
            None | Some(b'#') => false, // a nested block or a null item: left to the full parser
            Some(_) if key_len(rest).is_some() => {
                let col = indent + 1 + (after.len() - rest.len());
                self.open(Kind::Map, col) && self.entry(rest, col)
            }
            Some(_) => value(rest),
        }
    }

    fn finish(mut self) -> bool {
        while !self.blocks.is_empty() {
            if !self.close() {
                return false;
            }
        }
        self.root_seen
    }
}

/// `-` alone or `- ...`: a block sequence entry.
fn is_dash(body: &[u8]) -> bool {
    body == b"-" || body.starts_with(b"- ")
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// The length of a plain key of the subset at the start of `body` when it is followed by `:`
/// and a space or the end of the line.
fn key_len(body: &[u8]) -> Option<usize> {
    let first = *body.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let k = body
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
        .count();
    let colon_then_space =
        body.get(k) == Some(&b':') && matches!(body.get(k + 1), None | Some(b' '));
    (colon_then_space && k <= MAX_KEY && !NON_STRING_KEYS.contains(&&body[..k])).then_some(k)
}

/// After a value: nothing, or spaces, or spaces and a comment.
fn tail_ok(s: &[u8]) -> bool {
    let rest = trim_start(s);
    rest.is_empty() || (rest[0] == b'#' && rest.len() < s.len())
}

/// Characters that cannot start a plain scalar (YAML's indicators).
fn is_indicator(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// A plain scalar may start with `-` when a digit or `.` follows (`-1`, `-.5`).
fn may_start_plain(v: &[u8]) -> bool {
    match v.first() {
        None => false,
        Some(b'-') => v.get(1).is_some_and(|c| c.is_ascii_digit() || *c == b'.'),
        Some(&b) => !is_indicator(b),
    }
}

/// A one-line value in block context, with an optional comment after it.
fn value(v: &[u8]) -> bool {
    match v[0] {
        b'"' => double_quoted(v).is_some_and(|end| tail_ok(&v[end..])),
        b'\'' => single_quoted(v).is_some_and(|end| tail_ok(&v[end..])),
        b'[' => flow_seq(v, 0, 1).is_some_and(|end| tail_ok(&v[end..])),
        _ => may_start_plain(v) && plain_block(v),
    }
}

/// A plain scalar in block context: it must not hold `: ` or end in `:`; ` #` starts a comment.
fn plain_block(v: &[u8]) -> bool {
    for i in 1..v.len() {
        match v[i] {
            b':' if matches!(v.get(i + 1), None | Some(b' ')) => return false,
            b'#' if v[i - 1] == b' ' => return true,
            _ => {}
        }
    }
    v[0] != b':'
}

/// The end (one past the closing quote) of a double-quoted scalar on this line.
fn double_quoted(v: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < v.len() {
        match v[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let e = *v.get(i + 1)?;
                if !matches!(
                    e,
                    b'\\'
                        | b'"'
                        | b'/'
                        | b'0'
                        | b'a'
                        | b'b'
                        | b't'
                        | b'n'
                        | b'v'
                        | b'f'
                        | b'r'
                        | b'e'
                ) {
                    return None;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of a single-quoted scalar on this line (`''` is a quote inside it).
fn single_quoted(v: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < v.len() {
        if v[i] == b'\'' {
            if v.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// The end of the flow sequence starting at `v[at] == b'['` on this line: items are quoted
/// scalars, plain scalars without `: # " '` and nested flow sequences; no trailing comma.
fn flow_seq(v: &[u8], at: usize, depth: usize) -> Option<usize> {
    if depth > MAX_FLOW_DEPTH {
        return None;
    }
    let skip = |mut i: usize| {
        while v.get(i) == Some(&b' ') {
            i += 1;
        }
        i
    };
    let mut i = skip(at + 1);
    if v.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        let rest = &v[i..];
        i += match *rest.first()? {
            b'[' => flow_seq(v, i, depth + 1)? - i,
            b'"' => double_quoted(rest)?,
            b'\'' => single_quoted(rest)?,
            _ => plain_flow(rest)?,
        };
        i = skip(i);
        match *v.get(i)? {
            b',' => {
                i = skip(i + 1);
                if matches!(v.get(i), None | Some(b']' | b',')) {
                    return None;
                }
            }
            b']' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The length of a plain scalar inside a flow sequence (up to `,`, `]`, or the line's end).
fn plain_flow(v: &[u8]) -> Option<usize> {
    if !may_start_plain(v) {
        return None;
    }
    let n = v
        .iter()
        .position(|b| matches!(b, b',' | b'[' | b']' | b'{' | b'}'))
        .unwrap_or(v.len());
    let ok = !v[..n]
        .iter()
        .any(|b| matches!(b, b':' | b'#' | b'"' | b'\''))
        && matches!(v.get(n), Some(b',' | b']'));
    ok.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::check_yaml_full;
    use proptest::prelude::*;

    fn full_ok(doc: &str) -> bool {
        check_yaml_full(doc.as_bytes()).is_ok()
    }

    #[test]
    fn accepts_the_common_subset() {
        let docs = [
            "a: 1\nb:\n  c: x y z\n  d: [1, 2, \"three\", 'f''our', [5]]\n",
            "run_3:\n  learning_rate: 0.5\n  layers: [8, 16, 32]\n  description: \"lorem ipsum\"\n  password: ${DB_PASSWORD}\n  checksum: 00ff\n",
            "# top comment\n\nsteps:\n  - name: build # why\n    run: |\n      cargo build\n\n      cargo test\n  - uses: actions/checkout@v4\n  - plain item\nlist:\n- a\n- b\nafter: -1\n",
            "key: >-\n  folded\n  text\nempty: |\nnext: ~\n",
            "- a\n- b: 1\n  c: 2\n-   d: 3\n    e: [ ]\n",
            "app.kubernetes.io/name: x\non: push\nurl: http://host:8080/path?q=1#frag\n",
            "nested:\n   deeper:\n        deepest: 'x'\n   back: \"esc \\\" \\\\ \\n\"\n",
        ];
        for d in docs {
            assert!(proves_valid(d.as_bytes()), "{d}");
            assert!(full_ok(d), "{d}");
        }
    }

    #[test]
    fn refuses_errors_and_what_it_cannot_prove() {
        let docs = [
            // invalid YAML
            "a: 1\na: 2\n",
            "a: b: c\n",
            "a: [1, 2\n",
            "a: \"open\n",
            "a: 1\n  b: 2\n",
            "- a\nb: 1\n",
            "a:\n  - x\n - y\n",
            "a:\tb\n",
            "a: |\n    x\n  y\nb: 1\n",
            "a: 1\nb:\n  c: 1\n  c: 2\n",
            // duplicates only serde_yaml's resolution sees
            "null: 1\nNull: 2\n",
            "1: a\n0x1: b\n",
            // valid, but outside the subset
            "---\na: 1\n",
            "a: &x 1\nb: *x\n",
            "a: {b: 1}\n",
            "a: !Ref x\n",
            "\"q\": 1\n",
            "a: b\n  continued\n",
            "a: \"caf\u{e9}\"\n",
            "a: 1\r\n",
            "",
            "# only a comment\n",
        ];
        for d in docs {
            assert!(!proves_valid(d.as_bytes()), "{d:?}");
        }
        // Its refusals never change a verdict: `check` is the full parser's answer.
        for d in docs {
            assert_eq!(
                crate::syntax::check(crate::syntax::Format::Yaml, d.as_bytes()),
                check_yaml_full(d.as_bytes()),
                "{d:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_left_to_the_full_parser() {
        let mut doc = String::new();
        for i in 0..200 {
            doc.push_str(&" ".repeat(i));
            doc.push_str("k:\n");
        }
        assert!(!proves_valid(doc.as_bytes()));
        let flow = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(!proves_valid(flow.as_bytes()));
        // The deepest document it does prove is well within serde_yaml's limit.
        let mut doc = String::new();
        for i in 0..MAX_DEPTH - 1 {
            doc.push_str(&" ".repeat(i));
            doc.push_str("k:\n");
        }
        doc.push_str(&" ".repeat(MAX_DEPTH - 1));
        doc.push_str(&format!(
            "k: {}{}\n",
            "[".repeat(MAX_FLOW_DEPTH),
            "]".repeat(MAX_FLOW_DEPTH)
        ));
        assert!(proves_valid(doc.as_bytes()));
        assert!(full_ok(&doc));
    }

    /// A YAML tree, written out in block style by `emit`.
    #[derive(Debug, Clone)]
    enum Node {
        Scalar(&'static str),
        Block(&'static str, Vec<&'static str>),
        Map(Vec<(&'static str, Node)>),
        Seq(Vec<Node>),
    }

    const KEYS: &[&str] = &[
        "a", "b", "name", "run_id", "x.y", "k-8", "_p", "a/b", "on", "null", "True", "e1", "inf",
    ];
    const SCALARS: &[&str] = &[
        "1",
        "-3",
        "0.5",
        "-.5",
        "x y z",
        "${DB}",
        "a:b",
        "http://h:1/p",
        "~",
        "null",
        "true",
        "v # note",
        "\"dq\"",
        "\"a \\\" b\"",
        "'sq'",
        "'it''s'",
        "[1, 2]",
        "[a, [b, c]]",
        "[ ]",
        "[\"x\", 'y']",
        "0x1F",
        "1e3",
        "{a: 1}",
        "&anchor v",
        "*alias",
        "!tag v",
        "- x",
        "a: b",
        "\"unterminated",
        "[1, 2",
        "a #",
        "@x",
        "`x`",
        "%x",
        "|x",
        "? q",
    ];
    const BLOCK_LINES: &[&str] = &["line one", "  more", "", "# not a comment", "--- x", "a: b"];

    fn node() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![
            6 => proptest::sample::select(SCALARS).prop_map(Node::Scalar),
            1 => (
                proptest::sample::select(&["|", "|-", ">", ">+", "|2"][..]),
                proptest::collection::vec(proptest::sample::select(BLOCK_LINES), 0..4)
            )
                .prop_map(|(h, l)| Node::Block(h, l)),
        ];
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec((proptest::sample::select(KEYS), inner.clone()), 0..5)
                    .prop_map(Node::Map),
                proptest::collection::vec(inner, 0..4).prop_map(Node::Seq),
            ]
        })
    }

    /// Writes `n` as the value of a key or item whose line is at `indent`; `inline` is the line
    /// so far (`key:` or `- `). `step` is the extra indentation of nested blocks.
    fn emit(n: &Node, indent: usize, step: usize, inline: &str, out: &mut String) {
        let pad = |k: usize| " ".repeat(k);
        match n {
            Node::Scalar(s) => {
                out.push_str(inline);
                if inline.ends_with(':') {
                    out.push(' ');
                }
                out.push_str(s);
                out.push('\n');
            }
            Node::Block(h, lines) => {
                out.push_str(inline);
                if inline.ends_with(':') {
                    out.push(' ');
                }
                out.push_str(h);
                out.push('\n');
                for l in lines {
                    if !l.is_empty() {
                        out.push_str(&pad(indent + step));
                    }
                    out.push_str(l);
                    out.push('\n');
                }
            }
            Node::Map(entries) if entries.is_empty() => {
                out.push_str(inline.trim_end());
                out.push('\n');
            }
            Node::Seq(items) if items.is_empty() => {
                out.push_str(inline.trim_end());
                out.push('\n');
            }
            Node::Map(entries) => {
                out.push_str(inline.trim_end());
                if !inline.is_empty() {
                    out.push('\n');
                }
                let at = if inline.is_empty() {
                    indent
                } else {
                    indent + step
                };
                for (k, v) in entries {
                    emit(v, at, step, &format!("{}{k}:", pad(at)), out);
                }
            }
            Node::Seq(items) => {
                out.push_str(inline.trim_end());
                if !inline.is_empty() {
                    out.push('\n');
                }
                // Sequences under a key may sit at the key's own indentation.
                let at = if inline.is_empty() || (inline.ends_with(':') && step % 2 == 1) {
                    indent
                } else {
                    indent + step
                };
                for item in items {
                    match item {
                        Node::Map(entries) if !entries.is_empty() => {
                            let (k, v) = &entries[0];
                            emit(v, at + 2, step, &format!("{}- {k}:", pad(at)), out);
                            for (k, v) in &entries[1..] {
                                emit(v, at + 2, step, &format!("{}{k}:", pad(at + 2)), out);
                            }
                        }
                        _ => emit(item, at, step, &format!("{}- ", pad(at)), out),
                    }
                }
            }
        }
    }

    fn document() -> impl Strategy<Value = String> {
        (node(), 1usize..5).prop_map(|(n, step)| {
            let root = match n {
                Node::Map(_) | Node::Seq(_) => n,
                other => Node::Map(vec![("root", other)]),
            };
            let mut out = String::new();
            emit(&root, 0, step, "", &mut out);
            out
        })
    }

    /// Small edits that break documents in the ways people do.
    fn mutated() -> impl Strategy<Value = String> {
        (
            document(),
            proptest::collection::vec(
                (
                    any::<proptest::sample::Index>(),
                    proptest::sample::select(
                        &[
                            " ", "  ", ":", ": ", "-", "- ", "#", " #", "\"", "'", "[", "]", ",",
                            "\t", "\n", "|", "&", "*", "!", "{", "a", "\\", "\r",
                        ][..],
                    ),
                    any::<bool>(),
                ),
                1..4,
            ),
        )
            .prop_map(|(mut doc, edits)| {
                for (at, s, delete) in edits {
                    if doc.is_empty() {
                        break;
                    }
                    let i = at.index(doc.len());
                    if delete {
                        doc.remove(i);
                    } else {
                        doc.insert_str(i, s);
                    }
                }
                doc
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The fast path only ever says "valid" when the full parser agrees, so the check's
        /// verdict, message, line and column are always the full parser's.
        #[test]
        fn fast_accept_implies_full_accept(doc in document()) {
            if proves_valid(doc.as_bytes()) {
                prop_assert!(full_ok(&doc), "fast path accepted an invalid document:\n{doc}");
            }
            prop_assert_eq!(
                crate::syntax::check(crate::syntax::Format::Yaml, doc.as_bytes()),
                check_yaml_full(doc.as_bytes())
            );
        }

        #[test]
        fn fast_accept_implies_full_accept_after_edits(doc in mutated()) {
            if proves_valid(doc.as_bytes()) {
                prop_assert!(full_ok(&doc), "fast path accepted an invalid document:\n{doc:?}");
            }
        }
    }

    /// The generators reach both answers often enough for the properties above to mean
    /// something, and the fast path proves most valid subset documents.
    #[test]
    fn generators_cover_both_answers() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut fast, mut valid, mut both) = (0, 0, 0);
        for _ in 0..2000 {
            let doc = document().new_tree(&mut runner).unwrap().current();
            let f = proves_valid(doc.as_bytes());
            let v = full_ok(&doc);
            fast += usize::from(f);
            valid += usize::from(v);
            both += usize::from(f && v);
        }
        assert_eq!(fast, both);
        // Edited documents: enough of them still pass the fast path to test its refusals.
        let mut m = (0, 0);
        for _ in 0..4000 {
            let doc = mutated().new_tree(&mut runner).unwrap().current();
            let f = proves_valid(doc.as_bytes());
            m.0 += usize::from(f);
            m.1 += usize::from(f && !full_ok(&doc));
        }
        assert_eq!(m.1, 0, "fast path accepted invalid edited documents");
        assert!(
            m.0 > 100,
            "only {} edited documents reached the fast path",
            m.0
        );
        assert!(
            fast > 200,
            "fast path proved only {fast} of 2000 ({valid} valid)"
        );
        assert!(
            fast < valid,
            "the generator should also reach valid YAML outside the subset"
        );
    }
}
