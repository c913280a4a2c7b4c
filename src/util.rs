//! Small helpers shared by the command, the tests and the benchmarks.

use std::path::Path;

/// The apparent size in bytes of every file under `path`, recursively (what a store occupies
/// on disk). A missing path counts as 0.
pub fn dir_size(path: &Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// `bytes` in human units (`512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`).
pub use storage_core::verify::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dir_is_empty() {
        assert_eq!(dir_size(Path::new("/nonexistent/paxstore")).unwrap(), 0);
    }
}
