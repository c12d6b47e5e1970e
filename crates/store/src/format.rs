//! The data directory's format version: `data_dir/format`, one line with
//! the number, written atomically (temp file, sync, rename, directory sync).
//!
//! Read before anything else is opened: a binary refuses, changing nothing,
//! a data directory of a format it does not read, instead of failing half
//! way through RocksDB or the catalog. A directory without the file is
//! format 1 (every Flotilla before the file existed wrote format 1) and gets
//! the file; so does a new one.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::{Error, Result};

/// The format of the data directory (`db/` column families and keys, blob
/// layout, snapshot files) this build reads and writes.
pub const DATA_FORMAT: u32 = 1;
/// The file under `data_dir` that records it.
pub const FORMAT_FILE: &str = "format";

/// Checks the format recorded in `data_dir` (which exists), recording
/// [`DATA_FORMAT`] where none is.
pub(crate) fn check_or_record(data_dir: &Path) -> Result<()> {
    let path = data_dir.join(FORMAT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let found: u32 = text.trim().parse().map_err(|_| Error::Format {
                data_dir: data_dir.to_path_buf(),
                reason: format!(
                    "its {FORMAT_FILE} file says {:?}, not a format number; this binary reads format {DATA_FORMAT}",
                    text.trim()
                ),
            })?;
            if found == DATA_FORMAT {
                return Ok(());
            }
            let reason = if found > DATA_FORMAT {
                format!(
                    "this data directory was written by a newer Flotilla (format {found}); this binary reads format \
                     {DATA_FORMAT}: upgrade the binary"
                )
            } else {
                format!(
                    "this data directory was written by an older Flotilla (format {found}); this binary reads format \
                     {DATA_FORMAT} and does not convert it: run a release that reads format {found}, or start from an \
                     empty data directory (a cluster member copies everything back from its peers)"
                )
            };
            Err(Error::Format { data_dir: data_dir.to_path_buf(), reason })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => record(data_dir),
        Err(e) => Err(Error::io(&path, e)),
    }
}

fn record(data_dir: &Path) -> Result<()> {
    let path = data_dir.join(FORMAT_FILE);
    let tmp = data_dir.join(format!("{FORMAT_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{DATA_FORMAT}\n").as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(data_dir)?.sync_all()
    };
    write().map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn a_new_or_unmarked_data_dir_is_format_1_and_gets_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        drop(Store::open(&data).unwrap());
        assert_eq!(fs::read_to_string(data.join(FORMAT_FILE)).unwrap(), "1\n");
        // A data dir of a release without the file.
        fs::remove_file(data.join(FORMAT_FILE)).unwrap();
        drop(Store::open(&data).unwrap());
        assert_eq!(fs::read_to_string(data.join(FORMAT_FILE)).unwrap(), "1\n");
        drop(Store::open(&data).unwrap());
        assert!(!data.join("format.tmp").exists());
    }

    #[test]
    fn a_newer_format_is_refused_with_what_to_do_and_nothing_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join(FORMAT_FILE), "2\n").unwrap();
        let err = Store::open(&data).err().expect("format 2 is refused").to_string();
        assert!(err.contains("written by a newer Flotilla (format 2); this binary reads format 1: upgrade the binary"), "{err}");
        assert!(err.contains(&data.display().to_string()), "names the directory: {err}");
        assert!(!data.join("db").exists(), "nothing opened or created");
        assert_eq!(fs::read_to_string(data.join(FORMAT_FILE)).unwrap(), "2\n", "the marker stays");

        fs::write(data.join(FORMAT_FILE), "0\n").unwrap();
        let err = Store::open(&data).err().unwrap().to_string();
        assert!(err.contains("older Flotilla (format 0)"), "{err}");
        fs::write(data.join(FORMAT_FILE), "v2?\n").unwrap();
        let err = Store::open(&data).err().unwrap().to_string();
        assert!(err.contains("not a format number"), "{err}");
    }
}
