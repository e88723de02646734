//! The test's side of crashsim.c: reads the write journal a killed node
//! left and turns its files into what a power cut at a random moment could
//! have left on disk.

use crate::common::Rng;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One journaled write: `len` bytes at `offset`, replacing `old` (the part
/// of the range inside the file) when the file was `size_before` long.
#[derive(Debug)]
struct Write {
    offset: u64,
    size_before: u64,
    len: u64,
    old: Vec<u8>,
}

/// What the cut did, for the test's report.
#[derive(Debug, Default)]
pub struct Cut {
    /// Files with writes after their last fsync.
    pub files: usize,
    /// Writes after the last fsync, kept whole.
    pub kept: usize,
    /// Writes cut short (a random prefix of their bytes kept).
    pub torn: usize,
    /// Writes undone entirely.
    pub undone: usize,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let part = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(part)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn path(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Each file's writes since its last sync point, in order. A record cut
/// short by the kill is dropped: its write never started.
fn unsynced(journal: &[u8]) -> HashMap<String, Vec<Write>> {
    let mut pending: HashMap<String, Vec<Write>> = HashMap::new();
    let mut r = Reader { bytes: journal, at: 0 };
    while let Some(kind) = r.take(1).map(|k| k[0]) {
        let Some(path) = r.path() else { break };
        match kind {
            b'W' => {
                let header = (r.u64(), r.u64(), r.u64(), r.u64());
                let (Some(offset), Some(size_before), Some(len), Some(old_len)) = header else {
                    break;
                };
                let Some(old) = r.take(old_len as usize) else { break };
                let write = Write {
                    offset,
                    size_before,
                    len,
                    old: old.to_vec(),
                };
                pending.entry(path).or_default().push(write);
            }
            b'S' => {
                pending.remove(&path);
            }
            b'R' => {
                let Some(to) = r.path() else { break };
                let moved = pending.remove(&path).unwrap_or_default();
                pending.insert(to, moved);
            }
            b'U' => {
                pending.remove(&path);
            }
            other => panic!("crashsim journal: unknown record kind {other}"),
        }
    }
    pending
}

/// Undoes `w` except its first `keep` bytes.
fn undo(path: &str, w: &Write, keep: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let old_len = w.old.len() as u64;
    if keep < old_len {
        file.write_all_at(&w.old[keep as usize..], w.offset + keep)?;
    }
    let end = w.size_before.max(w.offset + keep);
    if file.metadata()?.len() > end {
        file.set_len(end)?;
    }
    Ok(())
}

/// Leaves each file as a power cut could have: its state at its last
/// fsync, plus a random number of the writes that followed, the next one
/// torn at a random byte.
pub fn cut(journal_path: &Path, rng: &mut Rng) -> Cut {
    let journal = std::fs::read(journal_path).unwrap_or_default();
    let mut pending: Vec<(String, Vec<Write>)> = unsynced(&journal).into_iter().collect();
    // A fixed order, so that a seed repeats the same cut.
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    let mut report = Cut::default();
    for (path, writes) in pending {
        if writes.is_empty() || !Path::new(&path).exists() {
            continue;
        }
        report.files += 1;
        let kept = rng.below(writes.len() as u64 + 1) as usize;
        report.kept += kept;
        for (i, w) in writes.iter().enumerate().skip(kept).rev() {
            let keep = match i == kept {
                true => rng.below(w.len.max(1)),
                false => 0,
            };
            undo(&path, w, keep).unwrap_or_else(|e| panic!("cannot cut {path}: {e}"));
            match keep > 0 {
                true => report.torn += 1,
                false => report.undone += 1,
            }
        }
    }
    report
}
