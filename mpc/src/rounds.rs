//! Round bookkeeping shared by every sans-IO protocol here: in each round a party takes exactly
//! one frame from every other party; frames from itself, from unknown parties, twice from one
//! party, of another session or of another round are refused.

use crate::session::Abort;
use crate::share::PartyId;
use bytes::Bytes;

use crate::wire::{Body, BodyView, Frame, FrameView, SessionId};

/// Which frames the current round still waits for.
pub(crate) struct RoundGate {
    pub session: SessionId,
    pub party: PartyId,
    pub parties: usize,
    pub max_frame: usize,
    pub round: u32,
    received: Vec<bool>,
    waiting: usize,
}

impl RoundGate {
    pub fn new(session: SessionId, party: PartyId, parties: usize, max_frame: usize) -> Self {
        Self::starting_at(session, party, parties, max_frame, 0)
    }

    /// A gate whose first round is `round` (for protocols that continue a session).
    pub fn starting_at(
        session: SessionId,
        party: PartyId,
        parties: usize,
        max_frame: usize,
        round: u32,
    ) -> Self {
        RoundGate {
            session,
            party,
            parties,
            max_frame,
            round,
            received: vec![false; parties],
            waiting: parties - 1,
        }
    }

    /// Checks and parses party `from`'s frame for this round, and marks it received.
    pub fn admit<'a>(&mut self, from: PartyId, bytes: &'a [u8]) -> Result<BodyView<'a>, Abort> {
        if from >= self.parties || from == self.party {
            return Err(Abort::UnknownParty { from });
        }
        if self.received[from] {
            return Err(Abort::Duplicate { from });
        }
        let frame = FrameView::parse(bytes, self.max_frame)
            .map_err(|error| Abort::BadFrame { from, error })?;
        if frame.session != self.session {
            return Err(Abort::WrongSession { from });
        }
        if frame.round != self.round {
            return Err(Abort::WrongRound {
                from,
                expected: self.round,
                got: frame.round,
            });
        }
        Ok(frame.body)
    }

    /// Records that `from`'s frame was accepted; true when it was the round's last.
    pub fn accepted(&mut self, from: PartyId) -> bool {
        self.received[from] = true;
        self.waiting -= 1;
        self.waiting == 0
    }

    /// Moves to the next round.
    pub fn advance(&mut self) {
        self.round += 1;
        self.received.iter_mut().for_each(|r| *r = false);
        self.waiting = self.parties - 1;
    }

    /// This party's frame with `body` for the current round.
    pub fn frame(&self, body: Body) -> Bytes {
        Frame {
            session: self.session,
            round: self.round,
            body,
        }
        .encode()
    }

    /// The peers of this party, in order.
    pub fn peers(&self) -> impl Iterator<Item = PartyId> + use<> {
        let me = self.party;
        (0..self.parties).filter(move |&j| j != me)
    }
}
