//! The lease store's log records. Tokens make replay order-insensitive: a
//! release or completion applies only to the lease that carries its token.

use crate::map::{LeaseInfo, TOKEN_LIMIT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    Acquire(LeaseInfo),
    Release { key: String, token: u64 },
    Complete { key: String, token: u64, completed_at: u64, outcome: Vec<u8> },
    Ack { token: u64 },
    LastRun { key: String, at: u64 },
    HighWater { token: u64 },
    /// How far an event-triggered order has read its event stream: only
    /// ever raised, so replay takes the largest.
    Cursor { key: String, seq: u64 },
}

const ACQUIRE: u8 = 1;
const RELEASE: u8 = 2;
const COMPLETE: u8 = 3;
const ACK: u8 = 4;
const LAST_RUN: u8 = 5;
const HIGH_WATER: u8 = 6;
const CURSOR: u8 = 7;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The ACQUIRE record of a lease, without cloning it into a [`Rec`].
pub fn acquire_bytes(l: &LeaseInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + l.key.len());
    out.push(ACQUIRE);
    out.extend_from_slice(&l.token.to_le_bytes());
    out.extend_from_slice(&l.acquired_at.to_le_bytes());
    out.extend_from_slice(&l.ttl_ms.to_le_bytes());
    put_bytes(&mut out, l.key.as_bytes());
    for part in [l.group.as_ref().map(|g| g.as_bytes()), l.meta.as_deref()] {
        match part {
            Some(b) => {
                out.push(1);
                put_bytes(&mut out, b);
            }
            None => out.push(0),
        }
    }
    out
}

impl Rec {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Rec::Acquire(l) => return acquire_bytes(l),
            Rec::Release { key, token } => {
                out.push(RELEASE);
                out.extend_from_slice(&token.to_le_bytes());
                put_bytes(&mut out, key.as_bytes());
            }
            Rec::Complete { key, token, completed_at, outcome } => {
                out.push(COMPLETE);
                out.extend_from_slice(&token.to_le_bytes());
                out.extend_from_slice(&completed_at.to_le_bytes());
                put_bytes(&mut out, key.as_bytes());
                put_bytes(&mut out, outcome);
            }
            Rec::Ack { token } => {
                out.push(ACK);
                out.extend_from_slice(&token.to_le_bytes());
            }
            Rec::LastRun { key, at } => {
                out.push(LAST_RUN);
                out.extend_from_slice(&at.to_le_bytes());
                put_bytes(&mut out, key.as_bytes());
            }
            Rec::HighWater { token } => {
                out.push(HIGH_WATER);
                out.extend_from_slice(&token.to_le_bytes());
            }
            Rec::Cursor { key, seq } => {
                out.push(CURSOR);
                out.extend_from_slice(&seq.to_le_bytes());
                put_bytes(&mut out, key.as_bytes());
            }
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Rec, String> {
        let mut r = Reader { b, at: 0 };
        let rec = match r.u8()? {
            ACQUIRE => {
                let token = r.token()?;
                let acquired_at = r.u64()?;
                let ttl_ms = r.u64()?;
                let key = r.string()?;
                let group = if r.present()? { Some(r.string()?) } else { None };
                let meta = if r.present()? { Some(r.bytes()?.to_vec()) } else { None };
                Rec::Acquire(LeaseInfo { key, token, acquired_at, expires_at: acquired_at.saturating_add(ttl_ms), ttl_ms, group, meta })
            }
            RELEASE => Rec::Release { token: r.token()?, key: r.string()? },
            COMPLETE => Rec::Complete { token: r.token()?, completed_at: r.u64()?, key: r.string()?, outcome: r.bytes()?.to_vec() },
            ACK => Rec::Ack { token: r.token()? },
            LAST_RUN => Rec::LastRun { at: r.u64()?, key: r.string()? },
            HIGH_WATER => Rec::HighWater { token: r.token()? },
            CURSOR => Rec::Cursor { seq: r.u64()?, key: r.string()? },
            t => return Err(format!("unknown lease record type {t}")),
        };
        if r.at != b.len() {
            return Err(format!("{} trailing bytes after a lease record", b.len() - r.at));
        }
        Ok(rec)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("lease record is truncated")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// The store never issues a token at or past the limit, so one in the log
    /// was not written by it; refusing it keeps `token + 1` from overflowing.
    fn token(&mut self) -> Result<u64, String> {
        let t = self.u64()?;
        if t >= TOKEN_LIMIT {
            return Err(format!("lease token {t} is past the limit of {TOKEN_LIMIT}"));
        }
        Ok(t)
    }
    /// Only 0 and 1 are written; any other flag would decode to something
    /// that encodes differently, so the record is not one this store wrote.
    fn present(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            f => Err(format!("lease record has presence flag {f}, not 0 or 1")),
        }
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "lease record key is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_an_error() {
        let recs = vec![
            Rec::Acquire(LeaseInfo { key: "k".into(), token: 7, acquired_at: 100, expires_at: 150, ttl_ms: 50, group: Some("g".into()), meta: Some(vec![1, 2]) }),
            Rec::Acquire(LeaseInfo { key: "k2".into(), token: 8, acquired_at: 1, expires_at: 2, ttl_ms: 1, group: None, meta: None }),
            Rec::Release { key: "k".into(), token: 7 },
            Rec::Complete { key: "k".into(), token: 7, completed_at: 9, outcome: b"did-work".to_vec() },
            Rec::Ack { token: 7 },
            Rec::LastRun { key: "k".into(), at: 100 },
            Rec::HighWater { token: 99 },
            Rec::Cursor { key: "k".into(), seq: 41 },
        ];
        for r in recs {
            let b = r.encode();
            assert_eq!(Rec::decode(&b).unwrap(), r);
            assert!(Rec::decode(&b[..b.len() - 1]).is_err());
        }
    }
}
