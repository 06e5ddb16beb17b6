//! Names of run Jobs: `<source>-<suffix>`, always a valid DNS-1123 label of
//! at most 63 characters, the suffix derived from the run's idempotency key
//! so a retried create names the same Job.

/// FNV-1a, 64 bit: stable across builds and platforms (unlike `DefaultHasher`).
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Eight base-32 characters (40 bits) from the idempotency key.
pub fn suffix(idempotency_key: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut h = fnv64(idempotency_key.as_bytes());
    (0..8)
        .map(|_| {
            let c = ALPHABET[(h & 31) as usize] as char;
            h >>= 5;
            c
        })
        .collect()
}

/// The run Job's name for `source` (a Job or CronJob name). For an Indexed
/// Job of `completions`, room is left for `-<completions - 1>`: the server
/// requires every pod hostname `<job>-<index>` to be a DNS label too.
pub fn run_name(source: &str, idempotency_key: &str, indexed_completions: Option<i32>) -> String {
    let reserve = indexed_completions.map_or(0, |c| 1 + (c.max(1) - 1).to_string().len());
    let suffix = suffix(idempotency_key);
    let mut base: String = source
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(63 - 1 - suffix.len() - reserve);
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "run" } else { base };
    format!("{base}-{suffix}")
}

/// A namespace setting must be a DNS-1123 label.
pub fn check_namespace(namespace: &str) -> Result<(), polysync_provider_api::ProviderError> {
    if namespace.is_empty()
        || namespace.len() > 63
        || !namespace.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || namespace.starts_with('-')
        || namespace.ends_with('-')
    {
        return Err(polysync_provider_api::ProviderError::invalid_input(format!(
            "setting `namespace`: {namespace:?} is not a valid namespace name (lowercase letters, digits and -, at most 63)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn indexed_names_leave_room_for_every_pod_hostname() {
        let source = "n".repeat(56);
        for completions in [1, 10, 11, 1000] {
            let name = run_name(&source, "k", Some(completions));
            assert!(format!("{name}-{}", completions - 1).len() <= 63, "{name} with {completions}");
        }
    }

    #[test]
    fn names_are_valid_labels_whatever_the_source() {
        for source in
            ["a", &"x".repeat(60), &"y".repeat(63), &format!("{}-z", "w".repeat(53)), "Mixed.Case_name", "---"]
        {
            let name = run_name(source, "key-1", None);
            assert!(is_dns_label(&name), "{source} -> {name}");
        }
        assert_eq!(run_name(&"x".repeat(60), "k", None).len(), 63);
    }

    #[test]
    fn same_key_same_name_other_key_other_name() {
        assert_eq!(run_name("job", "k1", None), run_name("job", "k1", None));
        assert_ne!(run_name("job", "k1", None), run_name("job", "k2", None));
        assert!(run_name("job", "k1", None).starts_with("job-"));
    }
}
