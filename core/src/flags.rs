//! `SocketFlags`, .NET's per-call flags for send and receive, mapped to the `MSG_*`
//! bits of the platform. Four constants and a union do not justify a dependency, so
//! this is a plain newtype.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// Flags for one send or receive call (.NET's `SocketFlags`).
///
/// # Examples
///
/// ```
/// use asyncresult_core::SocketFlags;
///
/// let flags = SocketFlags::PEEK | SocketFlags::DONT_ROUTE;
/// assert!(flags.contains(SocketFlags::PEEK));
/// assert_eq!(SocketFlags::default(), SocketFlags::NONE);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SocketFlags(u8);

impl SocketFlags {
    /// No flags.
    pub const NONE: SocketFlags = SocketFlags(0);
    /// Send or receive out-of-band data (`MSG_OOB`).
    ///
    /// A receive with it takes TCP's urgent byte. As with `recv(2)`, it does not wait
    /// for one: with none there, it fails with `EINVAL`. It keeps its place among the
    /// socket's receives (they run in the order they were begun), so one begun behind
    /// a pending ordinary receive runs only after that receive completes.
    pub const OUT_OF_BAND: SocketFlags = SocketFlags(1);
    /// Look at incoming data without consuming it (`MSG_PEEK`); receive only.
    pub const PEEK: SocketFlags = SocketFlags(2);
    /// Send without using routing tables (`MSG_DONTROUTE`); send only.
    pub const DONT_ROUTE: SocketFlags = SocketFlags(4);

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: SocketFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The platform's `MSG_*` bits for these flags.
    pub(crate) fn to_msg_flags(self) -> libc::c_int {
        let mut bits = 0;
        if self.contains(SocketFlags::OUT_OF_BAND) {
            bits |= libc::MSG_OOB;
        }
        if self.contains(SocketFlags::PEEK) {
            bits |= libc::MSG_PEEK;
        }
        if self.contains(SocketFlags::DONT_ROUTE) {
            bits |= libc::MSG_DONTROUTE;
        }
        bits
    }
}

impl BitOr for SocketFlags {
    type Output = SocketFlags;
    fn bitor(self, rhs: SocketFlags) -> SocketFlags {
        SocketFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for SocketFlags {
    fn bitor_assign(&mut self, rhs: SocketFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for SocketFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("SocketFlags(NONE)");
        }
        let names = [
            (SocketFlags::OUT_OF_BAND, "OUT_OF_BAND"),
            (SocketFlags::PEEK, "PEEK"),
            (SocketFlags::DONT_ROUTE, "DONT_ROUTE"),
        ];
        f.write_str("SocketFlags(")?;
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_msg_bits() {
        assert_eq!(SocketFlags::NONE.to_msg_flags(), 0);
        let all = SocketFlags::OUT_OF_BAND | SocketFlags::PEEK | SocketFlags::DONT_ROUTE;
        assert_eq!(
            all.to_msg_flags(),
            libc::MSG_OOB | libc::MSG_PEEK | libc::MSG_DONTROUTE
        );
        assert_eq!(
            format!("{all:?}"),
            "SocketFlags(OUT_OF_BAND | PEEK | DONT_ROUTE)"
        );
    }
}
