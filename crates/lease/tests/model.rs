//! The lease map and its gates against a plain sequential model.

use std::collections::HashMap;
use std::sync::Arc;

use orderly_lease::{AcquireOptions, Acquired, LeaseError, LeaseMap, ManualClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Acquire { key: u8, group: Option<u8>, ttl: u64 },
    Release { key: u8, back: u8 },
    Renew { key: u8, back: u8, ttl: u64 },
    Advance(u64),
    SetGate { group: u8, cap: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..5u8, proptest::option::of(0..2u8), 1..40u64).prop_map(|(key, group, ttl)| Op::Acquire { key, group, ttl }),
        3 => (0..5u8, 0..3u8).prop_map(|(key, back)| Op::Release { key, back }),
        1 => (0..5u8, 0..3u8, 1..40u64).prop_map(|(key, back, ttl)| Op::Renew { key, back, ttl }),
        2 => (0..30u64).prop_map(Op::Advance),
        1 => (0..2u8, 1..4u64).prop_map(|(group, cap)| Op::SetGate { group, cap }),
    ]
}

#[derive(Clone, Debug)]
struct Held {
    token: u64,
    expires: u64,
    group: Option<String>,
}

#[derive(Default)]
struct Model {
    now: u64,
    next_token: u64,
    held: HashMap<String, Held>,
    caps: HashMap<String, u64>,
    /// Tokens issued per key, newest last, to pick stale ones from.
    issued: HashMap<String, Vec<u64>>,
}

impl Model {
    fn count(&self, group: &str) -> u64 {
        self.held.values().filter(|h| h.group.as_deref() == Some(group)).count() as u64
    }

    fn acquire(&mut self, key: &str, group: Option<String>, ttl: u64) -> Result<u64, &'static str> {
        if let Some(g) = &group {
            let cap = self.caps.get(g).copied().unwrap_or(u64::MAX);
            if self.count(g) >= cap {
                let now = self.now;
                let before = self.held.len();
                self.held.retain(|_, h| !(h.group.as_deref() == Some(g.as_str()) && h.expires <= now));
                if self.held.len() == before || self.count(g) >= cap {
                    return Err("gate");
                }
            }
        }
        let token = self.next_token;
        self.next_token += 1;
        if let Some(h) = self.held.get(key) {
            if h.expires > self.now {
                return Err("held");
            }
        }
        self.held.insert(key.to_owned(), Held { token, expires: self.now + ttl, group });
        self.issued.entry(key.to_owned()).or_default().push(token);
        Ok(token)
    }

    fn pick(&self, key: &str, back: u8) -> u64 {
        let v = self.issued.get(key).cloned().unwrap_or_default();
        if v.is_empty() {
            return 1;
        }
        v[v.len().saturating_sub(1 + back as usize)]
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn map_and_gates_match_a_sequential_model(ops in proptest::collection::vec(op(), 1..120)) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let map = LeaseMap::new(clock.clone());
        let mut m = Model { now: 1, next_token: 1, ..Model::default() };
        for op in ops {
            match op {
                Op::Acquire { key, group, ttl } => {
                    let key = format!("k{key}");
                    let group = group.map(|g| format!("g{g}"));
                    let got = map.acquire(&key, AcquireOptions { ttl_ms: ttl, group: group.clone(), meta: None }).unwrap();
                    match (m.acquire(&key, group, ttl), got) {
                        (Ok(t), Acquired::Granted(info)) => prop_assert_eq!(info.token, t),
                        (Err("held"), Acquired::Held) | (Err("gate"), Acquired::GateFull) => {}
                        (want, got) => prop_assert!(false, "acquire {}: model {:?}, map {:?}", key, want, got),
                    }
                }
                Op::Release { key, back } => {
                    let key = format!("k{key}");
                    let token = m.pick(&key, back);
                    let got = map.release(&key, token);
                    let holds = m.held.get(&key).is_some_and(|h| h.token == token);
                    let issued = token < m.next_token;
                    match got {
                        Ok(_) => { prop_assert!(holds); m.held.remove(&key); }
                        Err(LeaseError::Stale { .. }) => prop_assert!(issued && !holds),
                        Err(LeaseError::InvalidArg(_)) => prop_assert!(!issued),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
                Op::Renew { key, back, ttl } => {
                    let key = format!("k{key}");
                    let token = m.pick(&key, back);
                    let got = map.renew(&key, token, ttl);
                    let now = m.now;
                    match m.held.get_mut(&key).filter(|h| h.token == token) {
                        Some(h) => { prop_assert!(got.is_ok()); h.expires = now + ttl; }
                        None => prop_assert!(got.is_err()),
                    }
                }
                Op::Advance(ms) => { clock.advance(ms); m.now += ms; }
                Op::SetGate { group, cap } => {
                    let g = format!("g{group}");
                    map.set_gate(&g, cap).unwrap();
                    m.caps.insert(g, cap);
                }
            }
            for g in ["g0", "g1"] {
                prop_assert_eq!(map.in_flight(Some(g)), m.count(g), "in flight of {}", g);
            }
            prop_assert_eq!(map.in_flight(None), m.held.len() as u64);
            for k in 0..5 {
                let key = format!("k{k}");
                prop_assert_eq!(map.holder(&key).map(|h| h.token), m.held.get(&key).map(|h| h.token));
            }
        }
    }
}

#[test]
fn bad_input_is_rejected_with_a_message() {
    let map = LeaseMap::new(Arc::new(ManualClock::new(0)));
    let ok = AcquireOptions { ttl_ms: 10, group: None, meta: None };
    for (key, opts, needle) in [
        (String::new(), ok.clone(), "empty"),
        ("x".repeat(orderly_lease::MAX_KEY_BYTES + 1), ok.clone(), "limit"),
        ("k".into(), AcquireOptions { ttl_ms: 0, ..ok.clone() }, "ttlMs"),
    ] {
        let err = map.acquire(&key, opts).unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_ARG");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(map.set_gate("g", 0).unwrap_err().to_string().contains("at least 1"));
    assert!(map.release("k", 99).unwrap_err().to_string().contains("unknown lease"));
}
