//! A piece's writes gathered in memory, then written as few runs.
//!
//! bao's decoder writes each 16 KiB leaf and each 64-byte hash pair on its own: straight
//! to the files that was about 32 `pwrite`s per 256 KiB piece. Gathered, a piece's data
//! is one write and its hash pairs one write per run of neighbours (its own subtree is
//! one run in a pre-order outboard; ancestors on the way to the root add a few).
//! Nothing reaches the files until the whole piece verified.

use bao_tree::io::outboard::PreOrderOutboard;
use bao_tree::io::sync::{Outboard, OutboardMut, WriteAt};
use bao_tree::{BaoTree, TreeNode};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Positioned writes in arrival order; a write that continues the last one extends it.
#[derive(Default)]
pub(crate) struct GatheredWrites {
    bytes: Vec<u8>,
    /// (file offset, length) of each run, their bytes one after another in `bytes`.
    runs: Vec<(u64, usize)>,
}

impl GatheredWrites {
    /// Writes every run at its offset, in the order they were gathered (so a later write
    /// to the same place wins, as it would have).
    pub(crate) fn write_to(&self, file: &File) -> io::Result<()> {
        let mut start = 0;
        for &(offset, length) in &self.runs {
            file.write_all_at(&self.bytes[start..start + length], offset)?;
            start += length;
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }
}

impl WriteAt for GatheredWrites {
    fn write_at(&mut self, position: u64, bytes: &[u8]) -> io::Result<usize> {
        match self.runs.last_mut() {
            Some((offset, length)) if *offset + *length as u64 == position => *length += bytes.len(),
            _ => self.runs.push((position, bytes.len())),
        }
        self.bytes.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A download's outboard while one piece decodes: hash pairs saved go to `saves` (at
/// their pre-order offsets in `outboard`'s file); loads read the file as it is.
pub(crate) struct GatheringOutboard<'a> {
    pub(crate) outboard: &'a PreOrderOutboard<File>,
    pub(crate) saves: &'a mut GatheredWrites,
}

impl Outboard for GatheringOutboard<'_> {
    fn root(&self) -> blake3::Hash {
        self.outboard.root
    }

    fn tree(&self) -> BaoTree {
        self.outboard.tree
    }

    fn load(&self, node: TreeNode) -> io::Result<Option<(blake3::Hash, blake3::Hash)>> {
        self.outboard.load(node)
    }
}

impl OutboardMut for GatheringOutboard<'_> {
    fn save(&mut self, node: TreeNode, pair: &(blake3::Hash, blake3::Hash)) -> io::Result<()> {
        let Some(offset) = self.outboard.tree.pre_order_offset(node) else { return Ok(()) };
        let mut content = [0u8; 64];
        content[..32].copy_from_slice(pair.0.as_bytes());
        content[32..].copy_from_slice(pair.1.as_bytes());
        self.saves.write_all_at(offset * 64, &content)
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_writes_merge_into_one_run_and_every_write_lands_where_it_was_aimed() {
        let folder = crate::tests::Folder::new("gathered");
        std::fs::create_dir_all(&folder.0).unwrap();
        let path = folder.0.join("file");
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let mut gathered = GatheredWrites::default();
        gathered.write_all_at(10, b"abc").unwrap();
        gathered.write_all_at(13, b"def").unwrap();
        gathered.write_all_at(2, b"xy").unwrap();
        gathered.write_all_at(11, b"B").unwrap();
        assert_eq!(gathered.runs(), 3, "10..16 is one run; 2..4 and the rewrite at 11 are others");
        gathered.write_to(&file).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0\0xy\0\0\0\0\0\0aBcdef");
    }
}
