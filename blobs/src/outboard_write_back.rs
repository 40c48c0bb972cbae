//! An import's outboard, written back in runs instead of a `pwrite` per hash pair.
//!
//! bao computes an outboard bottom-up and saves each 64-byte hash pair where it belongs in
//! the pre-order file: one write per pair was 65,536 `pwrite`s per GiB imported. Pairs are
//! kept here, ordered by offset, and written when [`PAIRS_KEPT_MAX`] are kept and at the
//! end, neighbours as one write: a subtree's pairs are neighbours in a pre-order outboard,
//! and bao finishes a subtree before it leaves it, so each write covers a whole run.
//! Memory is bounded by [`PAIRS_KEPT_MAX`] pairs (about 2 MiB), whatever the blob's size.

use bao_tree::io::sync::WriteAt;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Pairs kept before they are written (16,384: a 1 GiB blob's outboard in four writes'
/// worth of runs).
pub(crate) const PAIRS_KEPT_MAX: usize = 16 << 10;

const PAIR_BYTES: usize = 64;

/// An outboard file written through pairs kept in order; call [`OutboardWriteBack::finish`]
/// (what is kept when it is dropped unfinished is lost, as an import that failed is).
pub(crate) struct OutboardWriteBack {
    file: File,
    pairs: BTreeMap<u64, [u8; PAIR_BYTES]>,
    pairs_kept_max: usize,
}

impl OutboardWriteBack {
    pub(crate) fn new(file: File, pairs_kept_max: usize) -> OutboardWriteBack {
        OutboardWriteBack { file, pairs: BTreeMap::new(), pairs_kept_max }
    }

    /// Writes what is kept and hands back the file.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        self.write_kept()?;
        Ok(self.file)
    }

    /// Writes the kept pairs in runs of neighbours, in offset order.
    fn write_kept(&mut self) -> io::Result<()> {
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        for (offset, pair) in std::mem::take(&mut self.pairs) {
            if offset != run_start + run.len() as u64 {
                FileExt::write_all_at(&self.file, &run, run_start)?;
                run.clear();
                run_start = offset;
            }
            run.extend_from_slice(&pair);
        }
        FileExt::write_all_at(&self.file, &run, run_start)
    }
}

impl WriteAt for OutboardWriteBack {
    fn write_at(&mut self, position: u64, bytes: &[u8]) -> io::Result<usize> {
        let Ok(pair) = <[u8; PAIR_BYTES]>::try_from(bytes) else {
            // Not a hash pair: written at once, after what is kept (a later write wins).
            self.write_kept()?;
            return FileExt::write_at(&self.file, bytes, position);
        };
        self.pairs.insert(position, pair);
        if self.pairs.len() >= self.pairs_kept_max {
            self.write_kept()?;
        }
        Ok(PAIR_BYTES)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_kept()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bao_tree::io::outboard::PreOrderOutboard;

    /// An outboard built through the write-back equals one built pair by pair, whether the
    /// pairs are written at the end or many times on the way.
    #[test]
    fn an_outboard_written_back_equals_one_written_pair_by_pair() {
        let folder = crate::tests::Folder::new("write-back");
        std::fs::create_dir_all(&folder.0).unwrap();
        let data = crate::tests::bytes(5_000_000, 14);
        let tree = crate::pieces::tree_of(data.len() as u64);
        let mut by_pair = PreOrderOutboard { root: blake3::hash(b""), tree, data: Vec::new() };
        let root = bao_tree::io::sync::outboard(&data[..], tree, &mut by_pair).unwrap();
        for (name, pairs_kept_max) in [("all", PAIRS_KEPT_MAX), ("few", 7)] {
            let path = folder.0.join(name);
            let back = OutboardWriteBack::new(File::create(&path).unwrap(), pairs_kept_max);
            let mut written_back = PreOrderOutboard { root: blake3::hash(b""), tree, data: back };
            assert_eq!(bao_tree::io::sync::outboard(&data[..], tree, &mut written_back).unwrap(), root);
            drop(written_back.data.finish().unwrap());
            assert_eq!(std::fs::read(&path).unwrap(), by_pair.data, "pairs kept at most {pairs_kept_max}");
        }
    }
}
