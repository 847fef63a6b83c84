//! The file system as the protocol sees it: a small trait, so the server's real folder and the tests'
//! memory look the same. Paths are exactly as the client sent them; the implementation decides what
//! they mean and refuses what it must (the server's implementation confines them to one root).

use std::collections::HashMap;
use std::fmt;

use crate::packet::ErrorCode;

/// Why a file operation failed. Each maps to one TFTP error code; messages never name server paths.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FsError {
    /// No such file (ERROR 1).
    NotFound,
    /// Outside the root, not a regular file, or not permitted (ERROR 2).
    AccessDenied,
    /// No room left, or over the upload size cap (ERROR 3).
    DiskFull,
    /// The file exists and overwriting is not allowed (ERROR 6).
    Exists,
    /// Any other I/O failure (ERROR 0).
    Io,
}

impl FsError {
    /// The TFTP error code and a message safe to send to the client.
    pub fn to_tftp(self) -> (ErrorCode, &'static str) {
        match self {
            FsError::NotFound => (ErrorCode::NotFound, "File not found"),
            FsError::AccessDenied => (ErrorCode::AccessViolation, "Access violation"),
            FsError::DiskFull => (ErrorCode::DiskFull, "Disk full or allocation exceeded"),
            FsError::Exists => (ErrorCode::FileExists, "File already exists"),
            FsError::Io => (ErrorCode::Undefined, "I/O error"),
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_tftp().1)
    }
}

/// A file open for reading.
pub trait ReadFile {
    /// Size in bytes when opened.
    fn size(&self) -> u64;
    /// Read up to `buf.len()` bytes at `offset`; 0 means end of file.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, FsError>;
}

/// A file being written. Nothing is visible under the final name until [`WriteFile::commit`].
pub trait WriteFile {
    /// Append bytes.
    fn write(&mut self, data: &[u8]) -> Result<(), FsError>;
    /// The upload is complete: make it visible under its name.
    fn commit(self: Box<Self>) -> Result<(), FsError>;
    /// The upload failed: leave nothing behind.
    fn abort(self: Box<Self>);
}

/// Where files come from and go to.
pub trait FileSystem {
    /// Open `path` for reading.
    fn open_read(&mut self, path: &str) -> Result<Box<dyn ReadFile>, FsError>;
    /// Start writing `path` (refusing early what will certainly fail, such as an existing file that
    /// may not be overwritten).
    fn create(&mut self, path: &str) -> Result<Box<dyn WriteFile>, FsError>;
}

/// Files in memory, shared by clones: for tests and simulations.
#[derive(Clone, Default)]
pub struct MemFs {
    /// Name → contents. Shared so a test can look inside after the service took its clone.
    pub files: std::rc::Rc<std::cell::RefCell<HashMap<String, Vec<u8>>>>,
    /// Whether an existing file may be replaced.
    pub overwrite: bool,
}

impl MemFs {
    /// Add a file.
    pub fn insert(&self, name: &str, data: Vec<u8>) {
        self.files.borrow_mut().insert(name.to_string(), data);
    }

    /// A file's contents.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.files.borrow().get(name).cloned()
    }
}

/// A file read from memory (what [`MemFs`] opens; also usable on its own, e.g. for a client's upload).
pub struct MemRead(pub Vec<u8>);

impl ReadFile for MemRead {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let start = (offset as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

struct MemWrite {
    /// Where the file lands on commit.
    fs: MemFs,
    /// Its name.
    name: String,
    /// Its contents so far.
    data: Vec<u8>,
}

impl WriteFile for MemWrite {
    fn write(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.data.extend_from_slice(data);
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<(), FsError> {
        self.fs.files.borrow_mut().insert(self.name, self.data);
        Ok(())
    }
    fn abort(self: Box<Self>) {}
}

impl FileSystem for MemFs {
    fn open_read(&mut self, path: &str) -> Result<Box<dyn ReadFile>, FsError> {
        let data = self.get(path).ok_or(FsError::NotFound)?;
        Ok(Box::new(MemRead(data)))
    }
    fn create(&mut self, path: &str) -> Result<Box<dyn WriteFile>, FsError> {
        if !self.overwrite && self.files.borrow().contains_key(path) {
            return Err(FsError::Exists);
        }
        Ok(Box::new(MemWrite { fs: self.clone(), name: path.to_string(), data: Vec::new() }))
    }
}
