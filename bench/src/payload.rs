//! Payloads a receiver can check cheaply, so that a broken contender cannot look
//! fast: stream byte `k` of a connection with seed `s` is `(k + s) % 251`. Sends are
//! slices of one leaked buffer; a receiver checks its byte count and the first and
//! last byte of every read, which catches lost, duplicated and reordered chunks.
//! Ping-pong messages carry their round-trip number and are compared whole.

/// The period of the stream pattern (a prime, so that no power-of-two chunk aligns).
const PERIOD: u64 = 251;

/// The expected byte at stream offset `offset` for `seed`.
fn byte_at(offset: u64, seed: u64) -> u8 {
    ((offset + seed) % PERIOD) as u8
}

/// The send side of a patterned stream: chunk `j` of size `chunk`.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    bytes: &'static [u8],
    chunk: usize,
}

impl Pattern {
    /// A pattern of `chunk`-byte sends for `seed` (leaks `chunk + 251` bytes, once per
    /// connection of a short-lived cell process).
    pub fn new(chunk: usize, seed: u64) -> Pattern {
        let bytes: Vec<u8> = (0..(chunk as u64 + PERIOD))
            .map(|k| byte_at(k, seed))
            .collect();
        Pattern {
            bytes: Vec::leak(bytes),
            chunk,
        }
    }

    /// The bytes of send number `j` (stream offsets `j * chunk ..`).
    pub fn chunk(&self, j: u64) -> &'static [u8] {
        let start = ((j * self.chunk as u64) % PERIOD) as usize;
        &self.bytes[start..start + self.chunk]
    }
}

/// The receive side of a patterned stream.
#[derive(Debug, Clone)]
pub struct Verifier {
    offset: u64,
    seed: u64,
    total: u64,
}

impl Verifier {
    /// Expects `total` bytes of the pattern for `seed`.
    pub fn new(seed: u64, total: u64) -> Verifier {
        Verifier {
            offset: 0,
            seed,
            total,
        }
    }

    /// Checks the next bytes read (`data` empty means the peer ended the stream).
    pub fn take(&mut self, data: &[u8]) -> Result<(), String> {
        let (Some(&first), Some(&last)) = (data.first(), data.last()) else {
            return Err(format!(
                "stream ended after {} of {} bytes",
                self.offset, self.total
            ));
        };
        let len = data.len() as u64;
        if self.offset + len > self.total {
            return Err(format!(
                "received {} bytes, expected {}",
                self.offset + len,
                self.total
            ));
        }
        if first != byte_at(self.offset, self.seed)
            || last != byte_at(self.offset + len - 1, self.seed)
        {
            return Err(format!("corrupt data at stream offset {}", self.offset));
        }
        self.offset += len;
        Ok(())
    }

    /// Whether every expected byte has arrived.
    pub fn done(&self) -> bool {
        self.offset == self.total
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.offset
    }
}

/// The ping-pong request of round trip `i` (the echo must equal it).
pub fn ping(i: u64) -> [u8; 64] {
    let mut msg = [0u8; 64];
    msg[..8].copy_from_slice(&i.to_le_bytes());
    for (k, b) in msg.iter_mut().enumerate().skip(8) {
        *b = (i as u8).wrapping_add(k as u8);
    }
    msg
}

/// Compares the echo of round trip `i` with its request.
pub fn check_echo(i: u64, echo: &[u8]) -> Result<(), String> {
    if echo == ping(i) {
        Ok(())
    } else {
        Err(format!("round trip {i}: echo differs from the request"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_verify_in_order_and_not_out_of_order() {
        let pattern = Pattern::new(1000, 7);
        let mut v = Verifier::new(7, 3000);
        v.take(pattern.chunk(0)).expect("chunk 0");
        assert!(v.take(pattern.chunk(2)).is_err());
        v.take(pattern.chunk(1)).expect("chunk 1");
        v.take(pattern.chunk(2)).expect("chunk 2");
        assert!(v.done());
        assert!(v.take(pattern.chunk(3)).is_err());
    }

    #[test]
    fn echoes() {
        assert!(check_echo(5, &ping(5)).is_ok());
        assert!(check_echo(5, &ping(6)).is_err());
    }
}
