//! Little-endian reader/writer shared by the votequorum and qdevice codecs.
//! The reader is total: every method returns an error instead of panicking.

use crate::error::DecodeError;

/// Appends fixed little-endian fields.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A u16 count followed by the u32 ids. Callers keep lists under the limits,
    /// so the count always fits.
    pub(crate) fn ids(&mut self, ids: &[u32]) -> &mut Self {
        self.u16(u16::try_from(ids.len()).unwrap_or(u16::MAX));
        for id in ids.iter().take(usize::from(u16::MAX)) {
            self.u32(*id);
        }
        self
    }
    /// A u16 length followed by the bytes (truncated to u16::MAX by construction).
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(usize::from(u16::MAX));
        self.u16(n as u16);
        self.0.extend_from_slice(&b[..n]);
        self
    }
}

/// Reads fixed little-endian fields from a slice.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadType(v)),
        }
    }
    /// A u16-counted id list of at most `max` entries, strictly ascending
    /// (so a decoded list is a set and re-encodes byte for byte).
    pub(crate) fn ids(&mut self, max: usize) -> Result<Vec<u32>, DecodeError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(DecodeError::TooLarge);
        }
        let mut v = Vec::with_capacity(n.min(self.0.len() / 4));
        for _ in 0..n {
            let id = self.u32()?;
            if v.last().is_some_and(|&l| l >= id) {
                return Err(DecodeError::Malformed);
            }
            v.push(id);
        }
        Ok(v)
    }
    pub(crate) fn bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(DecodeError::TooLarge);
        }
        self.take(n)
    }
    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed)
        }
    }
}
