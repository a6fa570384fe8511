//! Base OTs between every ordered pair, once per committee (two rounds).
//!
//! Toward each peer j this party is the base-OT *sender* of 128 + 253 OTs (its seed pairs serve
//! its KOS receiver and COPE sender roles with j) and the *receiver* of j's 128 + 253 OTs with
//! choices Δ_j (a fresh KOS Δ for this pair) followed by the bits of α_i.

use bytes::Bytes;
use rand::RngExt;

use super::cope::{CopeReceiver, CopeSender, FIELD_BITS, bits};
use super::{MAX_PREP_FRAME, MascotKeys, PairOt, pair_context};
use crate::driver::{Outgoing, Protocol};
use crate::ot::base::{BaseOtSender, PointBytes, receive};
use crate::ot::kos::{KAPPA, KosReceiver, KosSender};
use crate::ot::prg::Block;
use crate::rounds::RoundGate;
use crate::session::Abort;
use crate::share::{MacKeyShare, PartyId};
use crate::wire::{Body, BodyView, SessionId};

const BASE_OTS: usize = KAPPA + FIELD_BITS;

/// One party's side of the setup.
pub struct Setup {
    gate: RoundGate,
    key: MacKeyShare,
    senders: Vec<Option<BaseOtSender>>,
    deltas: Vec<u128>,
    /// Points answering each peer's base-OT sender, sent in the second round.
    answers: Vec<Vec<u8>>,
    chosen: Vec<Vec<Block>>,
    pairs: Vec<Vec<(Block, Block)>>,
    out: Vec<Bytes>,
    done: bool,
}

impl Setup {
    /// Starts the setup of `party` among `parties` with MAC key share `key`.
    pub fn new(session: SessionId, party: PartyId, parties: usize, key: MacKeyShare) -> Self {
        let mut rng = rand::rng();
        let gate = RoundGate::new(session, party, parties, MAX_PREP_FRAME);
        let mut senders: Vec<Option<BaseOtSender>> = (0..parties).map(|_| None).collect();
        let mut out = vec![Bytes::new(); parties];
        for j in gate.peers() {
            let (sender, point) = BaseOtSender::new(&mut rng);
            senders[j] = Some(sender);
            out[j] = gate.frame(Body::Bytes(point.to_vec()));
        }
        Setup {
            deltas: (0..parties).map(|_| rng.random()).collect(),
            answers: vec![Vec::new(); parties],
            chosen: vec![Vec::new(); parties],
            pairs: vec![Vec::new(); parties],
            gate,
            key,
            senders,
            out,
            done: false,
        }
    }

    fn accept(&mut self, from: PartyId, body: BodyView) -> Result<(), Abort> {
        let bytes = match body {
            BodyView::Bytes(b) => b,
            other => {
                return Err(Abort::UnexpectedBody {
                    from,
                    expected: "bytes",
                    got: other.kind(),
                });
            }
        };
        let me = self.gate.party;
        let session = self.gate.session;
        if self.gate.round == 0 {
            let point: PointBytes = bytes.try_into().map_err(|_| Abort::WrongLength {
                from,
                expected: 32,
                got: bytes.len(),
            })?;
            let choices: Vec<bool> = KosSender::delta_bits(self.deltas[from])
                .into_iter()
                .chain(bits(&self.key.value()))
                .collect();
            let context = pair_context(session, from, me, "base OT");
            let (points, keys) = receive(&context, &point, &choices, &mut rand::rng())
                .map_err(|error| Abort::BaseOt { party: from, error })?;
            self.answers[from] = points.concat();
            self.chosen[from] = keys;
        } else {
            if bytes.len() != 32 * BASE_OTS {
                return Err(Abort::WrongLength {
                    from,
                    expected: 32 * BASE_OTS,
                    got: bytes.len(),
                });
            }
            let points: Vec<PointBytes> = bytes
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect();
            let sender = self.senders[from].take().expect("one sender per peer");
            let context = pair_context(session, me, from, "base OT");
            self.pairs[from] = sender
                .finish(&context, &points)
                .map_err(|error| Abort::BaseOt { party: from, error })?;
        }
        Ok(())
    }

    fn finish(&mut self) -> MascotKeys {
        let me = self.gate.party;
        let alpha = self.key.value();
        let pairs = (0..self.gate.parties)
            .map(|j| {
                if j == me {
                    return None;
                }
                let mut mine = std::mem::take(&mut self.pairs[j]);
                let mut chosen = std::mem::take(&mut self.chosen[j]);
                let cope_pairs = mine.split_off(KAPPA);
                let cope_chosen = chosen.split_off(KAPPA);
                Some(PairOt {
                    kos_receiver: KosReceiver::new(mine),
                    kos_sender: KosSender::new(self.deltas[j], chosen),
                    cope_sender: CopeSender::new(cope_pairs),
                    cope_receiver: CopeReceiver::new(&alpha, cope_chosen),
                })
            })
            .collect();
        MascotKeys {
            session: self.gate.session,
            party: me,
            parties: self.gate.parties,
            key: self.key.clone(),
            pairs,
            next_batch: 0,
            next_round: self.gate.round + 1,
        }
    }
}

impl Protocol for Setup {
    type Output = MascotKeys;

    fn outgoing(&mut self) -> Result<Outgoing, Abort> {
        if self.done {
            return Err(Abort::Ended("finished"));
        }
        Ok(Outgoing::PerPeer(self.out.clone()))
    }

    fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Option<MascotKeys>, Abort> {
        if self.done {
            return Err(Abort::Ended("finished"));
        }
        let body = self.gate.admit(from, bytes)?;
        if let Err(e) = self.accept(from, body) {
            self.done = true;
            return Err(e);
        }
        if !self.gate.accepted(from) {
            return Ok(None);
        }
        if self.gate.round == 1 {
            self.done = true;
            return Ok(Some(self.finish()));
        }
        self.gate.advance();
        for j in self.gate.peers() {
            let answer = std::mem::take(&mut self.answers[j]);
            self.out[j] = self.gate.frame(Body::Bytes(answer));
        }
        Ok(None)
    }

    fn abort(&mut self, reason: Abort) -> Abort {
        self.done = true;
        reason
    }
}
