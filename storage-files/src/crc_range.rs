//! Record checksums at every offset of a buffer in linear time.
//!
//! Strict recovery must know whether a valid record starts anywhere after a damaged one
//! (corruption) or not (a torn final write). Checking each candidate offset by computing its
//! CRC over the record length it claims costs the sum of those lengths: quadratic in the tail
//! for adversarial bytes (every offset claiming a long record). This module answers each
//! candidate in constant time after one linear pass, with CRC algebra:
//!
//! - CRC32C is linear over GF(2): for byte strings `A`, `B`,
//!   `crc(AB) = S_|B|(crc(A)) ^ crc(B)`, where `S_n` multiplies by `x^(8n)` modulo the CRC
//!   polynomial (what `crc32c_combine` does);
//! - so with prefix checksums `C_k = crc(buf[..k])`, a record at `p` ending at `e` (its CRC covers
//!   `buf[p..p+4]` and `buf[p+8..e]`) has checksum `S_(e-p-8)(u) ^ C_e` with
//!   `u = crc(buf[p..p+4]) ^ C_(p+8)`; it equals the stored `s` exactly when
//!   `x^(-8(p+8)) * u == x^(-8e) * (C_e ^ s)`, which separates `p` from `e`;
//! - `C_k` and `x^(-8k)` at any `k` come from checkpoints every [`STRIDE`] bytes: at most
//!   `STRIDE` bytes of CRC and one multiplication.
//!
//! The representation is zlib's: bit 31 holds the coefficient of `x^0`.

/// Bytes between checkpoints.
const STRIDE: usize = 256;
/// The reflected CRC32C polynomial (without `x^32`).
const POLY: u32 = 0x82F6_3B78;
/// The polynomial `1`.
const ONE: u32 = 1 << 31;

/// `a * b` modulo the CRC32C polynomial.
fn mul(a: u32, mut b: u32) -> u32 {
    let mut m = ONE;
    let mut p = 0;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

fn pow(mut base: u32, mut e: u64) -> u32 {
    let mut r = ONE;
    while e != 0 {
        if e & 1 != 0 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// `x^-1`: `(P(x) - 1) / x`, which exists since the polynomial has a constant term.
fn x_inverse() -> u32 {
    ((POLY & !ONE) << 1) | 1
}

/// Prefix checksums and inverse powers of `x` at every [`STRIDE`]-th offset of a buffer.
pub(crate) struct RangeCrc<'a> {
    buf: &'a [u8],
    /// `crc(buf[..i * STRIDE])`.
    prefix: Vec<u32>,
    /// `x^(-8 i STRIDE)`.
    inv: Vec<u32>,
    /// `x^(-8 j)` for `j < STRIDE`.
    inv_small: Vec<u32>,
}

impl<'a> RangeCrc<'a> {
    /// One pass over `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        let inv_byte = pow(x_inverse(), 8);
        let mut inv_small = Vec::with_capacity(STRIDE);
        let mut v = ONE;
        for _ in 0..STRIDE {
            inv_small.push(v);
            v = mul(v, inv_byte);
        }
        let inv_stride = v;
        let n = buf.len() / STRIDE + 1;
        let (mut prefix, mut inv) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut c, mut w) = (0u32, ONE);
        prefix.push(c);
        inv.push(w);
        for chunk in buf.chunks_exact(STRIDE) {
            c = crc32c::crc32c_append(c, chunk);
            w = mul(w, inv_stride);
            prefix.push(c);
            inv.push(w);
        }
        RangeCrc {
            buf,
            prefix,
            inv,
            inv_small,
        }
    }

    /// `(crc(buf[..k]), x^(-8k))`.
    fn at(&self, k: usize) -> (u32, u32) {
        let i = k / STRIDE;
        let c = crc32c::crc32c_append(self.prefix[i], &self.buf[i * STRIDE..k]);
        (c, mul(self.inv[i], self.inv_small[k - i * STRIDE]))
    }

    /// Whether the record header at `p` (length, CRC, kind) has a CRC that matches the bytes
    /// up to `e = p + 9 + length`. `e` must lie within the buffer and after `p + 8`.
    pub(crate) fn record_crc_matches(&self, p: usize, e: usize) -> bool {
        let b = self.buf;
        let stored = u32::from_le_bytes([b[p + 4], b[p + 5], b[p + 6], b[p + 7]]);
        let (c8, w8) = self.at(p + 8);
        let (ce, we) = self.at(e);
        let u = crc32c::crc32c(&b[p..p + 4]) ^ c8;
        mul(w8, u) == mul(we, ce ^ stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polynomial `x`.
    const X: u32 = 1 << 30;

    #[test]
    fn algebra() {
        assert_eq!(mul(X, x_inverse()), ONE);
        assert_eq!(mul(ONE, 0x1234_5678), 0x1234_5678);
        // S_n as crc32c_combine does it.
        let shifted = crc32c::crc32c_combine(0xdead_beef, 0, 1000);
        assert_eq!(mul(pow(X, 8000), 0xdead_beef), shifted);
    }

    #[test]
    fn agrees_with_the_direct_checksum_at_every_offset() {
        let mut buf = paxstore_core::kv::Payload::filled(7, 3000).bytes().to_vec();
        // Plant valid records at a few offsets.
        for &(p, len) in &[(3usize, 40usize), (700, 0), (1201, 1500)] {
            buf[p..p + 4].copy_from_slice(&(len as u32).to_le_bytes());
            buf[p + 8] = 1;
            let crc =
                crc32c::crc32c_append(crc32c::crc32c(&buf[p..p + 4]), &buf[p + 8..p + 9 + len]);
            buf[p + 4..p + 8].copy_from_slice(&crc.to_le_bytes());
        }
        let r = RangeCrc::new(&buf);
        let mut found = 0;
        for p in 0..buf.len() - 9 {
            for len in [0usize, 1, 40, 255, 256, 257, 1500] {
                let e = p + 9 + len;
                if e > buf.len() {
                    continue;
                }
                let direct = crc32c::crc32c_append(crc32c::crc32c(&buf[p..p + 4]), &buf[p + 8..e])
                    == u32::from_le_bytes([buf[p + 4], buf[p + 5], buf[p + 6], buf[p + 7]]);
                assert_eq!(
                    r.record_crc_matches(p, e),
                    direct,
                    "offset {p}, length {len}"
                );
                found += usize::from(direct);
            }
        }
        assert_eq!(found, 3);
    }
}
