//! A linearizability checker for registers (Wing & Gong's search, with
//! Lowe's memoization, as in Porcupine): each key is checked on its own,
//! since operations on different registers commute.
//!
//! An operation runs from its invocation to its completion. The history is
//! linearizable when every operation can be given one instant inside its
//! interval such that, in that order, each read sees the latest write and
//! each compare-and-set succeeds exactly when the register held the old
//! value. An operation whose outcome is unknown (a time-out, a lost
//! connection) may take effect at any instant after its invocation, or
//! never.

use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Read,
    Write(i64),
    /// Compare-and-set: (expected, new).
    Cas(i64, i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Read(i64),
    Written,
    Cas(bool),
    /// No answer: it may or may not have happened.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub key: i64,
    pub call: Call,
    pub outcome: Outcome,
    /// Nanoseconds since the run began.
    pub invoked: u64,
    /// None when the outcome is unknown.
    pub completed: Option<u64>,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let done = self
            .completed
            .map_or("?".to_string(), |c| format!("{:.3}", c as f64 / 1e9));
        write!(
            f,
            "[{:.3}s .. {done}s] client {} key {}: {:?} -> {:?}",
            self.invoked as f64 / 1e9,
            self.client,
            self.key,
            self.call,
            self.outcome
        )
    }
}

/// The register's next value if `op` can take effect on `state`.
fn step(state: i64, op: &Op) -> Option<i64> {
    match (op.call, op.outcome) {
        (Call::Read, Outcome::Read(v)) => (v == state).then_some(state),
        (Call::Read, _) => Some(state),
        (Call::Write(v), Outcome::Written | Outcome::Unknown) => Some(v),
        (Call::Cas(old, new), Outcome::Cas(true)) => (state == old).then_some(new),
        (Call::Cas(old, _), Outcome::Cas(false)) => (state != old).then_some(state),
        (Call::Cas(old, new), Outcome::Unknown) => Some(if state == old { new } else { state }),
        _ => None,
    }
}

/// Whether `ops` (one key) is linearizable from `initial`.
fn linearizable(ops: &[Op], initial: i64) -> bool {
    let n = ops.len();
    let ret = |i: usize| ops[i].completed.unwrap_or(u64::MAX);
    let must = ops.iter().filter(|o| o.completed.is_some()).count();
    let words = n.div_ceil(64).max(1);
    // Depth-first search over (which ops are linearized, register value).
    let mut seen: HashSet<(Vec<u64>, i64)> = HashSet::new();
    let mut stack = vec![(vec![0u64; words], initial, 0usize)];
    while let Some((done, state, known)) = stack.pop() {
        if known == must {
            return true;
        }
        if !seen.insert((done.clone(), state)) {
            continue;
        }
        let is_done = |i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        // No op can come before one that returned before it was invoked.
        let first_return = (0..n).filter(|&i| !is_done(i)).map(ret).min().unwrap_or(u64::MAX);
        for i in (0..n).filter(|&i| !is_done(i) && ops[i].invoked <= first_return) {
            if let Some(next) = step(state, &ops[i]) {
                let mut d = done.clone();
                d[i / 64] |= 1 << (i % 64);
                stack.push((d, next, known + usize::from(ops[i].completed.is_some())));
            }
        }
    }
    false
}

/// A key whose history is not linearizable, with the shortest failing
/// window: the operations invoked up to the one that makes it fail, from
/// the last point where the history was still linearizable.
#[derive(Debug)]
pub struct Violation {
    pub key: i64,
    pub window: Vec<Op>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "key {} is not linearizable; shortest failing window:", self.key)?;
        for op in &self.window {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// Checks every key of `history`, each register starting at `initial`.
pub fn check(history: &[Op], initial: i64) -> Result<usize, Violation> {
    let mut keys: Vec<i64> = history.iter().map(|o| o.key).collect();
    keys.sort_unstable();
    keys.dedup();
    for &key in &keys {
        // Unknown reads say nothing.
        let mut ops: Vec<Op> = history
            .iter()
            .filter(|o| o.key == key && !(o.call == Call::Read && o.outcome == Outcome::Unknown))
            .cloned()
            .collect();
        ops.sort_by_key(|o| o.invoked);
        if linearizable(&ops, initial) {
            continue;
        }
        // The shortest prefix (by invocation) that fails, seen when its
        // last operation completed; operations still running then count
        // as unknown.
        let mut fail_at = ops.len();
        for k in 1..=ops.len() {
            let last = &ops[k - 1];
            let cut = last.completed.unwrap_or(last.invoked);
            let prefix: Vec<Op> = ops[..k]
                .iter()
                .map(|o| match o.completed {
                    Some(c) if c > cut && o.call != Call::Read => Op {
                        outcome: Outcome::Unknown,
                        completed: None,
                        ..o.clone()
                    },
                    _ => o.clone(),
                })
                .filter(|o| !(o.call == Call::Read && o.completed.is_some_and(|c| c > cut)))
                .collect();
            if !linearizable(&prefix, initial) {
                fail_at = k;
                break;
            }
        }
        let from = fail_at.saturating_sub(8);
        return Err(Violation {
            key,
            window: ops[from..fail_at].to_vec(),
        });
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, outcome: Outcome, invoked: u64, completed: Option<u64>) -> Op {
        Op {
            client,
            key: 1,
            call,
            outcome,
            invoked,
            completed,
        }
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let h = vec![
            op(0, Call::Write(1), Outcome::Written, 0, Some(10)),
            op(1, Call::Read, Outcome::Read(1), 2, Some(5)),
            op(2, Call::Read, Outcome::Read(0), 3, Some(4)),
            op(0, Call::Cas(1, 2), Outcome::Cas(true), 11, Some(12)),
            op(1, Call::Cas(1, 3), Outcome::Cas(false), 13, Some(14)),
            op(2, Call::Read, Outcome::Read(2), 15, Some(16)),
        ];
        assert_eq!(check(&h, 0).map_err(|v| v.to_string()), Ok(1));
    }

    #[test]
    fn a_stale_read_is_caught() {
        // The write completed before the read began, yet the read saw the
        // old value.
        let h = vec![
            op(0, Call::Write(1), Outcome::Written, 0, Some(10)),
            op(1, Call::Read, Outcome::Read(0), 20, Some(30)),
        ];
        let v = check(&h, 0).unwrap_err();
        assert_eq!(v.window.len(), 2, "{v}");
    }

    #[test]
    fn a_lost_write_is_caught() {
        // Acknowledged, then never seen: later reads return the value
        // before it.
        let h = vec![
            op(0, Call::Write(5), Outcome::Written, 0, Some(1)),
            op(0, Call::Write(7), Outcome::Written, 2, Some(3)),
            op(1, Call::Read, Outcome::Read(7), 4, Some(5)),
            op(1, Call::Read, Outcome::Read(5), 6, Some(7)),
            op(1, Call::Read, Outcome::Read(5), 8, Some(9)),
        ];
        let v = check(&h, 0).unwrap_err();
        assert!(v.to_string().contains("Read(5)"), "{v}");
        assert_eq!(v.window.len(), 4, "the window ends at the first bad read: {v}");
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let seen = vec![
            op(0, Call::Write(3), Outcome::Unknown, 0, None),
            op(1, Call::Read, Outcome::Read(3), 50, Some(60)),
        ];
        assert!(check(&seen, 0).is_ok());
        let unseen = vec![
            op(0, Call::Write(3), Outcome::Unknown, 0, None),
            op(1, Call::Read, Outcome::Read(0), 50, Some(60)),
        ];
        assert!(check(&unseen, 0).is_ok());
        // But it cannot take effect before it was invoked.
        let early = vec![
            op(1, Call::Read, Outcome::Read(3), 0, Some(10)),
            op(0, Call::Write(3), Outcome::Unknown, 20, None),
        ];
        assert!(check(&early, 0).is_err());
    }

    #[test]
    fn a_double_applied_cas_is_caught() {
        // Two CAS(0 -> x) both report success: impossible.
        let h = vec![
            op(0, Call::Cas(0, 1), Outcome::Cas(true), 0, Some(10)),
            op(1, Call::Cas(0, 2), Outcome::Cas(true), 1, Some(11)),
        ];
        assert!(check(&h, 0).is_err());
    }
}
