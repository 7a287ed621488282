//! A sequential model of what the log should hold after any prefix of history.

pub type Rec = (u64, Vec<u8>);

#[derive(Clone, Debug)]
pub enum Op {
    Append(u64, Vec<u8>),
    Checkpoint { last: u64, live: Vec<Rec> },
}

impl Op {
    pub fn end(&self) -> u64 {
        match self {
            Op::Append(l, _) => *l,
            Op::Checkpoint { last, .. } => *last,
        }
    }
}

#[derive(Default, Clone, Debug)]
pub struct Model {
    pub base: Vec<Rec>,
    pub ops: Vec<Op>,
}

impl Model {
    pub fn state_at(&self, upto: u64) -> Vec<Rec> {
        let mut s = self.base.clone();
        for op in &self.ops {
            if op.end() > upto {
                break;
            }
            match op {
                Op::Append(l, p) => s.push((*l, p.clone())),
                Op::Checkpoint { live, .. } => s = live.clone(),
            }
        }
        s
    }

    pub fn current(&self) -> Vec<Rec> {
        self.state_at(u64::MAX)
    }

    /// True if `got` is the state after some prefix of history that includes
    /// everything up to `frontier` (the acknowledged LSNs).
    pub fn explains(&self, got: &[Rec], frontier: u64) -> bool {
        let mut candidates = vec![frontier];
        candidates.extend(self.ops.iter().map(Op::end).filter(|&e| e >= frontier));
        candidates.iter().any(|&l| self.state_at(l) == got)
    }
}
