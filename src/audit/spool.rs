//! The local spool that keeps decisions durable while PostgreSQL is unreachable.
//!
//! One segment file per spooled group: frames of `len: u32 LE | crc32: u32 LE | JSON entry`.
//! A segment is written under a temporary name, fsync'd, renamed and the directory fsync'd
//! before any request of the group is answered, so an acknowledged record survives a crash. A
//! torn or corrupt frame can only be the unacknowledged tail of a group interrupted mid-write;
//! reading stops there. A segment is deleted only after its rows are committed in PostgreSQL.

use super::records::Entry;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".spool";
/// Largest frame accepted when reading: guards against a corrupt length.
const MAX_FRAME: u32 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool full: {used} + {needed} bytes would exceed the cap of {cap} bytes")]
    Full { used: u64, needed: u64, cap: u64 },
    #[error("spool io: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cap: u64,
    bytes: u64,
    next: u64,
}

impl Spool {
    /// Opens (creating) the spool directory and accounts for segments left by an earlier run.
    pub fn open(dir: &Path, cap: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut spool = Spool {
            dir: dir.to_owned(),
            cap,
            bytes: 0,
            next: 1,
        };
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A group that never finished its fsync: nothing in it was acknowledged.
                fs::remove_file(entry.path())?;
            } else if let Some(n) = segment_number(&name) {
                spool.bytes += entry.metadata()?.len();
                spool.next = spool.next.max(n + 1);
            }
        }
        Ok(spool)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.segments().map(|s| s.is_empty()).unwrap_or(true)
    }

    /// Frames entries (done outside the lock, it is pure).
    pub fn frame(entries: &[Entry]) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::new();
        for entry in entries {
            let payload = serde_json::to_vec(entry)?;
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
        }
        Ok(out)
    }

    /// Writes one group durably, or refuses it whole when it would pass the cap.
    pub fn append(&mut self, framed: &[u8]) -> Result<PathBuf, SpoolError> {
        let needed = framed.len() as u64;
        if self.bytes + needed > self.cap {
            return Err(SpoolError::Full {
                used: self.bytes,
                needed,
                cap: self.cap,
            });
        }
        let name = format!("{SEGMENT_PREFIX}{:020}{SEGMENT_SUFFIX}", self.next);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(framed)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(SpoolError::Io(e));
        }
        self.next += 1;
        self.bytes += needed;
        Ok(path)
    }

    /// Segments oldest first.
    pub fn segments(&self) -> io::Result<Vec<PathBuf>> {
        let mut segments: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| segment_number(&e.file_name().to_string_lossy()).map(|n| (n, e.path())))
            .collect();
        segments.sort();
        Ok(segments.into_iter().map(|(_, p)| p).collect())
    }

    /// Deletes a segment whose rows are committed.
    pub fn remove(&mut self, path: &Path) -> io::Result<()> {
        let len = fs::metadata(path)?.len();
        fs::remove_file(path)?;
        File::open(&self.dir)?.sync_all()?;
        self.bytes = self.bytes.saturating_sub(len);
        Ok(())
    }
}

/// Reads a segment's entries, stopping at the first torn or corrupt frame.
pub fn read_segment(path: &Path) -> io::Result<Vec<Entry>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(decode_frames(&bytes))
}

pub fn decode_frames(mut bytes: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    while bytes.len() >= 8 {
        let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if len > MAX_FRAME || bytes.len() < 8 + len as usize {
            break;
        }
        let payload = &bytes[8..8 + len as usize];
        if crc32fast::hash(payload) != crc {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(entry) => entries.push(entry),
            Err(_) => break,
        }
        bytes = &bytes[8 + len as usize..];
    }
    entries
}

fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::records::EventRecord;

    fn event(n: u64) -> Entry {
        Entry::event(EventRecord {
            kind: "test".into(),
            actor: "spool-test".into(),
            decision_id: None,
            payload: serde_json::json!({ "n": n }),
        })
    }

    #[test]
    fn groups_survive_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let first = vec![event(1), event(2)];
        spool.append(&Spool::frame(&first).unwrap()).unwrap();
        let mut torn = Spool::frame(&[event(3), event(4)]).unwrap();
        torn.truncate(torn.len() - 3);
        let torn_path = spool.append(&torn).unwrap();

        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let segments = spool.segments().unwrap();
        assert_eq!(segments.len(), 2);
        assert_eq!(read_segment(&segments[0]).unwrap(), first);
        let kept = read_segment(&torn_path).unwrap();
        assert_eq!(
            kept.len(),
            1,
            "only the complete frame of the torn group is read"
        );
        assert!(spool.bytes() > 0);
    }

    #[test]
    fn a_flipped_bit_stops_reading() {
        let mut framed = Spool::frame(&[event(1), event(2)]).unwrap();
        let last = framed.len() - 2;
        framed[last] ^= 0x01;
        assert_eq!(decode_frames(&framed).len(), 1);
    }

    #[test]
    fn the_cap_refuses_a_whole_group_and_removal_frees_space() {
        let dir = tempfile::tempdir().unwrap();
        let framed = Spool::frame(&[event(1)]).unwrap();
        let mut spool = Spool::open(dir.path(), framed.len() as u64 * 2).unwrap();
        let a = spool.append(&framed).unwrap();
        spool.append(&framed).unwrap();
        assert!(matches!(
            spool.append(&framed),
            Err(SpoolError::Full { .. })
        ));
        spool.remove(&a).unwrap();
        spool.append(&framed).unwrap();
        assert_eq!(spool.segments().unwrap().len(), 2);
    }
}
