//! Validators for the small value languages a Job manifest uses: resource quantities, DNS names,
//! label values and durations. Each returns a message saying what is wrong and how to fix it.

/// What a quantity measures, for the error hint and the milli-byte check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityKind {
    /// CPU cores (`500m`, `2`).
    Cpu,
    /// Bytes (`512Mi`, `2G`).
    Memory,
    /// A count (GPUs).
    Count,
}

const BINARY_SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
const DECIMAL_SUFFIXES: [&str; 9] = ["n", "u", "m", "", "k", "M", "G", "T", "P"];

/// Checks a Kubernetes resource quantity (`<number><suffix>`, as `resource.Quantity` parses it)
/// and returns it unchanged, or a message naming the accepted units.
pub fn check_quantity(value: &str, kind: QuantityKind) -> Result<String, String> {
    let hint = match kind {
        QuantityKind::Cpu => "use cores like `2` or `1.5`, or millicores like `500m`",
        QuantityKind::Memory => {
            "use a Kubernetes quantity such as `512Mi` or `2Gi` (binary: Ki Mi Gi Ti Pi Ei) or `500M` (decimal: k M G T P E)"
        }
        QuantityKind::Count => "use a whole number like `1`",
    };
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed != value {
        return Err(format!("invalid quantity `{value}`: {hint}"));
    }
    let number_end = value
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(value.len(), |(i, _)| i);
    let (number, suffix) = value.split_at(number_end);
    let digits = number.trim_start_matches(['+', '-']);
    let valid_number = !digits.is_empty()
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit())
        && !digits.ends_with('.');
    if !valid_number {
        return Err(format!("invalid quantity `{value}`: {hint}"));
    }
    if number.starts_with('-') {
        return Err(format!("invalid quantity `{value}`: must not be negative"));
    }
    let exponent_ok = suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    let known_suffix =
        BINARY_SUFFIXES.contains(&suffix) || DECIMAL_SUFFIXES.contains(&suffix) || suffix == "E";
    if !known_suffix && !exponent_ok {
        return Err(format!(
            "invalid quantity `{value}`: `{suffix}` is not a unit; {hint}"
        ));
    }
    match kind {
        QuantityKind::Memory if suffix == "m" || suffix == "u" || suffix == "n" => Err(format!(
            "invalid memory quantity `{value}`: `{suffix}` means a fraction of a byte; did you mean `{digits}Mi` or `{digits}M`?"
        )),
        QuantityKind::Count if !suffix.is_empty() || digits.contains('.') => {
            Err(format!("invalid count `{value}`: {hint}"))
        }
        _ => Ok(value.to_owned()),
    }
}

/// Checks an RFC 1123 DNS label (namespaces, container names): lowercase alphanumerics and `-`,
/// starting and ending alphanumeric, at most 63 characters.
pub fn check_dns_label(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 63 || !is_label(value) {
        return Err(format!(
            "invalid {what} `{value}`: must be a DNS label (lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters)"
        ));
    }
    Ok(())
}

/// Checks an RFC 1123 DNS subdomain (Secret and ServiceAccount names): DNS labels joined by `.`,
/// at most 253 characters.
pub fn check_dns_subdomain(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 || !value.split('.').all(is_label) {
        return Err(format!(
            "invalid {what} `{value}`: must be a DNS subdomain (lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters)"
        ));
    }
    Ok(())
}

fn is_label(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Turns any text into a DNS label fragment of at most `max` characters: lowercase, runs of other
/// characters become one `-`, no `-` at either end. Empty input gives `stage`.
pub fn dns_fragment(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut dash = false;
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "stage".to_owned()
    } else {
        out
    }
}

/// Turns any text into a valid label value (at most 63 characters of `[A-Za-z0-9_.-]`, starting
/// and ending alphanumeric).
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Parses a duration such as `90s`, `30m`, `2h`, `1h30m`, `1d` or a bare number of seconds, and
/// returns whole seconds (at least 1).
pub fn parse_duration(value: &str) -> Result<u64, String> {
    let hint = "use a duration like `90s`, `30m`, `2h` or `1h30m`";
    let text = value.trim();
    if text.is_empty() {
        return Err(format!("invalid duration `{value}`: {hint}"));
    }
    if let Ok(secs) = text.parse::<u64>() {
        return if secs == 0 {
            Err(format!("invalid duration `{value}`: must be at least 1s"))
        } else {
            Ok(secs)
        };
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut saw_unit = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("invalid duration `{value}`: {hint}")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration `{value}`: {hint}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("invalid duration `{value}`: too long"))?;
        number.clear();
        saw_unit = true;
    }
    if !number.is_empty() || !saw_unit {
        return Err(format!("invalid duration `{value}`: {hint}"));
    }
    if total == 0 {
        return Err(format!("invalid duration `{value}`: must be at least 1s"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn quantities_kubernetes_accepts() {
        for q in [
            "500m",
            "2",
            "1.5",
            "0.25",
            "512Mi",
            "2Gi",
            "500M",
            "1e3",
            "128974848",
            "1E",
            "1.5Gi",
        ] {
            let kind = if q.ends_with('m') {
                QuantityKind::Cpu
            } else {
                QuantityKind::Memory
            };
            assert_eq!(check_quantity(q, kind).as_deref(), Ok(q), "{q}");
        }
    }

    #[test]
    fn quantity_with_lowercase_mb_names_the_unit_and_fix() {
        let err = check_quantity("500mb", QuantityKind::Memory).unwrap_err();
        assert!(err.contains("`mb` is not a unit"), "{err}");
        assert!(err.contains("512Mi"), "{err}");
    }

    #[test]
    fn bad_quantities_are_rejected() {
        for q in [
            "", " 1", "Mi", "1..5", "1.", "-1", "1 Gi", "2GB", "1e", "abc", "1x",
        ] {
            assert!(check_quantity(q, QuantityKind::Memory).is_err(), "{q}");
        }
        let milli = check_quantity("500m", QuantityKind::Memory).unwrap_err();
        assert!(milli.contains("did you mean `500Mi`"), "{milli}");
        assert!(check_quantity("1.5", QuantityKind::Count).is_err());
        assert!(check_quantity("2", QuantityKind::Count).is_ok());
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_label("ml-team", "namespace").is_ok());
        let err = check_dns_label("ML_Team", "namespace").unwrap_err();
        assert!(
            err.contains("invalid namespace `ML_Team`: must be a DNS label"),
            "{err}"
        );
        assert!(check_dns_label("-a", "x").is_err());
        assert!(check_dns_label(&"a".repeat(64), "x").is_err());
        assert!(check_dns_subdomain("s3.creds", "secret").is_ok());
        assert!(check_dns_subdomain("s3..creds", "secret").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration("600"), Ok(600));
        for bad in ["", "0", "0s", "2 hours", "h", "1.5h", "3w", "5m3"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn fragments_and_label_values() {
        assert_eq!(
            dns_fragment("train@lr=0.01,depth=4", 40),
            "train-lr-0-01-depth-4"
        );
        assert_eq!(dns_fragment("__", 10), "stage");
        assert_eq!(dns_fragment("Prepare_Data", 4), "prep");
        assert_eq!(label_value("train@lr=0.01"), "train_lr_0.01");
    }

    proptest! {
        #[test]
        fn dns_fragment_is_always_a_label(text in ".{0,80}", max in 1usize..63) {
            let f = dns_fragment(&text, max);
            prop_assert!(check_dns_label(&f, "x").is_ok(), "{:?}", f);
            prop_assert!(f.len() <= max.max(5));
        }

        #[test]
        fn label_value_is_valid(text in ".{0,100}") {
            let v = label_value(&text);
            prop_assert!(v.len() <= 63);
            prop_assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
            prop_assert!(v.is_empty() || (v.starts_with(|c: char| c.is_ascii_alphanumeric()) && v.ends_with(|c: char| c.is_ascii_alphanumeric())));
        }

        #[test]
        fn quantity_checker_never_panics(text in ".{0,20}") {
            let _ = check_quantity(&text, QuantityKind::Memory);
            let _ = parse_duration(&text);
        }

        #[test]
        fn well_formed_quantities_pass(n in 0u32..100_000, frac in proptest::option::of(0u32..1000), suffix in prop::sample::select(vec!["", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"])) {
            let q = match frac { Some(f) => format!("{n}.{f}{suffix}"), None => format!("{n}{suffix}") };
            prop_assert_eq!(check_quantity(&q, QuantityKind::Memory), Ok(q.clone()));
        }

        #[test]
        fn composed_durations_add_up(h in 0u64..100, m in 0u64..60, s in 1u64..60) {
            prop_assert_eq!(parse_duration(&format!("{h}h{m}m{s}s")), Ok(h * 3600 + m * 60 + s));
        }
    }
}
