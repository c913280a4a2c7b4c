//! Log names, for the backends that hold many named logs in one store (storage-rocks'
//! `RocksStore`, storage-files' `FilesStore`): 1 to [`MAX_LOG_NAME`] bytes of ASCII letters,
//! digits, `_`, `.` and `-`. No `/`, `!` or `#` can occur in one, so a name is safe in a
//! column family name, a metadata key and an `AnyStorage` spec.

/// The longest log name accepted, in bytes.
pub const MAX_LOG_NAME: usize = 128;

/// Why `name` is not a valid log name, or `None` if it is.
///
/// ```
/// use paxstore_core::names::log_name_problem;
/// assert_eq!(log_name_problem("shard-17_a.b"), None);
/// assert!(log_name_problem("a/b").is_some());
/// ```
pub fn log_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_LOG_NAME {
        Some("it is longer than 128 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("only ASCII letters, digits, '_', '.' and '-' are allowed")
    } else {
        None
    }
}
