//! The batched MAC check, as a four-round sub-protocol of a session.
//!
//! 1. Each party commits to a random seed.
//! 2. Each opens its seed; the challenge r is derived from all seeds, so no party can choose it
//!    after the checked values are fixed.
//! 3. Each commits to σ_i = Σ r^k m_{k,i} − α_i · Σ r^k v_k and to its view of the opened and
//!    public values.
//! 4. Each opens that commitment.
//!
//! The check passes iff Σσ_i = 0 and every party saw the same values. A forged value or MAC passes
//! with probability about (number of values)/l.

use crate::commit::{Binding, CoinToss, Digest, commit};
use crate::field::Fp;
use crate::ot::prg::Prg;
use crate::session::Abort;
use crate::share::{CheckToken, KeyError, MacKeyShare, PartyId};
use crate::wire::{Body, BodyView, CheckReveal, SessionId};

/// Which of a session's two checks this is, to name it in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStage {
    /// The values opened while evaluating (Beaver d and e), checked before any output is opened.
    Intermediate,
    /// The opened outputs, checked before they are returned.
    Outputs,
    /// A preprocessing batch: the sacrifice of every triple and the consistency of every MAC.
    Preprocessing,
}

/// What a commitment that failed to open was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    CoinSeed,
    CheckReveal,
}

/// Values opened since the last check, with this party's MAC shares, plus public values
/// (masked inputs) that carry no MAC but must be the same for everyone.
#[derive(Debug, Default)]
pub struct OpenedLog {
    pub values: Vec<Fp>,
    pub macs: Vec<Fp>,
    pub publics: Vec<Fp>,
}

impl OpenedLog {
    pub fn with_capacity(n: usize) -> Self {
        OpenedLog {
            values: Vec::with_capacity(n),
            macs: Vec::with_capacity(n),
            publics: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, value: Fp, mac: Fp) {
        self.values.push(value);
        self.macs.push(mac);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.publics.is_empty()
    }

    pub fn wipe(&mut self) {
        self.macs.iter_mut().for_each(Fp::wipe);
        *self = OpenedLog::default();
    }
}

/// Σ r^k v_k, by Horner's rule in four interleaved lanes (lane j sums the v_{4m+j} in powers of
/// r⁴), so four multiplications are in flight instead of one chain waiting on each result.
fn combine(values: &[Fp], r: Fp) -> Fp {
    let r2 = r * r;
    let r4 = r2 * r2;
    let mut lanes = [Fp::ZERO; 4];
    let chunks = values.chunks_exact(4);
    let tail = chunks.remainder();
    // The tail holds the highest powers: start Horner's rule with it.
    let mut high = Fp::ZERO;
    for v in tail.iter().rev() {
        high = high * r + *v;
    }
    for chunk in chunks.rev() {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = *lane * r4 + *v;
        }
    }
    let low = lanes[0] + r * lanes[1] + r2 * lanes[2] + r2 * r * lanes[3];
    // Σ over full chunks + r^(4·full) · tail.
    let full = values.len() / 4;
    let mut shift = Fp::ONE;
    let mut base = r4;
    let mut e = full;
    while e > 0 {
        if e & 1 == 1 {
            shift *= base;
        }
        base = base * base;
        e >>= 1;
    }
    low + shift * high
}

fn reveal_payload(r: &CheckReveal) -> [u8; 96] {
    let mut out = [0u8; 96];
    out[..32].copy_from_slice(&r.sigma.to_bytes());
    out[32..64].copy_from_slice(&r.opened_view.to_bytes());
    out[64..].copy_from_slice(&r.public_view.to_bytes());
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    CommitSeed,
    OpenSeed,
    CommitReveal,
    OpenReveal,
}

/// Round-level context the session gives the check.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    pub session: SessionId,
    pub round: u32,
    pub party: PartyId,
}

/// One MAC check in progress.
pub(crate) struct MacCheck {
    pub stage: CheckStage,
    step: Step,
    log: OpenedLog,
    coin: CoinToss,
    reveal: CheckReveal,
    /// The round in which the commitments now awaiting their openings were sent.
    commit_round: u32,
    commits: Vec<Digest>,
    reveals: Vec<CheckReveal>,
    /// This check's place among the key's checks; dropping it unresolved poisons the key.
    token: Option<CheckToken>,
}

/// Whether the check needs more rounds.
pub(crate) enum Progress {
    Continue,
    /// Every message is in, but an earlier check under the key has not resolved yet: call
    /// [`MacCheck::complete`] again once it has ([`MacKeyShare::changed`]).
    Blocked,
    Passed,
}

impl MacCheck {
    pub fn new(
        stage: CheckStage,
        log: OpenedLog,
        parties: usize,
        key: &MacKeyShare,
    ) -> Result<Self, Abort> {
        let token = key.begin_check().map_err(|_| Abort::KeyPoisoned)?;
        let empty = CheckReveal {
            sigma: Fp::ZERO,
            opened_view: Fp::ZERO,
            public_view: Fp::ZERO,
            nonce: [0; 32],
        };
        Ok(MacCheck {
            stage,
            step: Step::CommitSeed,
            log,
            coin: CoinToss::new(parties),
            reveal: empty,
            commit_round: 0,
            commits: vec![[0; 32]; parties],
            reveals: vec![empty; parties],
            token: Some(token),
        })
    }

    /// This party's message for the current step.
    pub fn outgoing(&mut self, ctx: Ctx) -> Body {
        let me = Binding {
            session: ctx.session,
            round: ctx.round,
            party: ctx.party,
        };
        match self.step {
            Step::CommitSeed => Body::Commit(self.coin.commitment(me)),
            Step::OpenSeed => Body::Seed(self.coin.opening(ctx.party)),
            Step::CommitReveal => {
                self.commit_round = ctx.round;
                let c = commit(
                    me,
                    "reveal",
                    &reveal_payload(&self.reveal),
                    &self.reveal.nonce,
                );
                self.commits[ctx.party] = c;
                Body::Commit(c)
            }
            Step::OpenReveal => {
                self.reveals[ctx.party] = self.reveal;
                Body::Reveal(self.reveal)
            }
        }
    }

    /// Takes party `from`'s message for the current step.
    pub fn accept(&mut self, ctx: Ctx, from: PartyId, body: BodyView) -> Result<(), Abort> {
        let theirs = Binding {
            session: ctx.session,
            round: self.commit_round,
            party: from,
        };
        match (self.step, body) {
            (Step::CommitSeed, BodyView::Commit(c)) => self.coin.take_commitment(from, c),
            (Step::CommitReveal, BodyView::Commit(c)) => self.commits[from] = c,
            (Step::OpenSeed, BodyView::Seed(seed)) => {
                if !self.coin.take_opening(ctx.session, from, seed) {
                    return Err(Abort::CommitmentMismatch {
                        party: from,
                        what: Committed::CoinSeed,
                    });
                }
            }
            (Step::OpenReveal, BodyView::Reveal(r)) => {
                if commit(theirs, "reveal", &reveal_payload(&r), &r.nonce) != self.commits[from] {
                    return Err(Abort::CommitmentMismatch {
                        party: from,
                        what: Committed::CheckReveal,
                    });
                }
                self.reveals[from] = r;
            }
            (_, body) => {
                return Err(Abort::UnexpectedBody {
                    from,
                    expected: self.expected(),
                    got: body.kind(),
                });
            }
        }
        Ok(())
    }

    fn expected(&self) -> &'static str {
        match self.step {
            Step::CommitSeed | Step::CommitReveal => "commitment",
            Step::OpenSeed => "coin seed",
            Step::OpenReveal => "MAC-check reveal",
        }
    }

    /// Finishes the current step once every party's message is in. A failure leaves the key
    /// poisoned.
    pub fn complete(&mut self, ctx: Ctx, key: &MacKeyShare) -> Result<Progress, Abort> {
        let result = self.step_forward(ctx, key);
        if result.is_err() {
            self.token = None;
        }
        result
    }

    fn step_forward(&mut self, ctx: Ctx, key: &MacKeyShare) -> Result<Progress, Abort> {
        match self.step {
            Step::CommitSeed => self.step = Step::OpenSeed,
            Step::OpenSeed => {
                let r = Prg::new(&self.coin.result(ctx.session), 0).field_elements(1)[0];
                let opened_view = combine(&self.log.values, r);
                let public_view = combine(&self.log.publics, r);
                let mac_sum = combine(&self.log.macs, r);
                self.reveal = CheckReveal {
                    sigma: mac_sum - key.value() * opened_view,
                    opened_view,
                    public_view,
                    nonce: rand::random(),
                };
                self.step = Step::CommitReveal;
            }
            Step::CommitReveal => {
                // Every σ commitment is in; from here this party's σ is out.
                self.token.as_mut().ok_or(Abort::KeyPoisoned)?.expose();
                self.step = Step::OpenReveal;
            }
            Step::OpenReveal => {
                let token = self.token.as_ref().ok_or(Abort::KeyPoisoned)?;
                match token.may_conclude() {
                    Err(KeyError::Poisoned | KeyError::Busy) => return Err(Abort::KeyPoisoned),
                    Ok(false) => return Ok(Progress::Blocked),
                    Ok(true) => {}
                }
                let sum: Fp = self.reveals.iter().map(|r| r.sigma).sum();
                if !sum.is_zero() {
                    return Err(Abort::MacCheckFailed(self.stage));
                }
                let mine = self.reveals[ctx.party];
                if let Some(party) = self.reveals.iter().position(|r| {
                    (r.opened_view, r.public_view) != (mine.opened_view, mine.public_view)
                }) {
                    return Err(Abort::InconsistentBroadcast { party });
                }
                self.log.wipe();
                if let Some(token) = self.token.take() {
                    token.passed();
                }
                return Ok(Progress::Passed);
            }
        }
        Ok(Progress::Continue)
    }

    pub fn wipe(&mut self) {
        self.log.wipe();
        self.reveal.sigma.wipe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_is_the_plain_power_sum() {
        let mut rng = rand::rng();
        let r = Fp::random(&mut rng);
        for n in 0..40 {
            let v: Vec<Fp> = (0..n).map(|_| Fp::random(&mut rng)).collect();
            let mut power = Fp::ONE;
            let mut want = Fp::ZERO;
            for x in &v {
                want += power * *x;
                power *= r;
            }
            assert_eq!(combine(&v, r), want, "{n} values");
        }
    }

    /// A check that ends wipes its log and this party's σ.
    #[test]
    fn a_wiped_check_holds_nothing() {
        let key = MacKeyShare::new(Fp::from_u64(5));
        let mut log = OpenedLog::default();
        log.push(Fp::ONE, Fp::from_u64(5));
        let mut check = MacCheck::new(CheckStage::Outputs, log, 2, &key).unwrap();
        check.reveal.sigma = Fp::from_u64(9);
        check.wipe();
        assert!(check.log.is_empty() && check.log.macs.is_empty());
        assert!(check.reveal.sigma.is_zero());
    }

    /// What was opened and this party's MAC shares of it are gone once a check is done.
    #[test]
    fn a_wiped_log_holds_nothing() {
        let mut log = OpenedLog::with_capacity(2);
        log.push(Fp::ONE, Fp::from_u64(2));
        log.publics.push(Fp::ONE);
        log.wipe();
        assert!(log.is_empty() && log.macs.is_empty());
    }
}
