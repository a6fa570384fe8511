//! Arbitrary bytes from the network never panic a decoder or a session: they get a typed error.

use crate::common;

use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::session::Status;
use conclave_mpc::wire::{Body, DEFAULT_MAX_FRAME, Frame, WIRE_VERSION};
use conclave_mpc::{Abort, Circuit, CircuitBuilder, Fp, Session, SessionConfig};
use proptest::prelude::*;

fn session(party: usize) -> Session {
    let mut b = CircuitBuilder::new(2);
    let (x, y) = (b.input(0), b.input(1));
    let p = b.mul(x, y);
    b.reveal(p);
    let circuit = b.build();
    let material = InsecureDealer::new(2, 3)
        .deal(&circuit.requirements())
        .remove(party);
    let cfg = SessionConfig::new(common::SESSION, party, 2);
    Session::new(cfg, circuit, vec![Fp::ONE], material).unwrap()
}

proptest! {
    #[test]
    fn frame_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Frame::decode(&bytes, DEFAULT_MAX_FRAME);
    }

    #[test]
    fn frame_decoder_never_panics_on_plausible_headers(
        tag in 0u8..6, round in 0u32..3, rest in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let mut bytes = vec![WIRE_VERSION];
        bytes.extend_from_slice(&common::SESSION.0);
        bytes.extend_from_slice(&round.to_le_bytes());
        bytes.push(tag);
        bytes.extend_from_slice(&rest);
        let _ = Frame::decode(&bytes, DEFAULT_MAX_FRAME);
        // A session given the same bytes aborts with a typed error and stays aborted.
        let mut s = session(0);
        let r = s.incoming(1, &bytes);
        prop_assert!(r.is_err());
        prop_assert_eq!(s.outgoing().err(), Some(Abort::Ended("aborted earlier")));
    }

    #[test]
    fn circuit_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Circuit::decode(&bytes, 1 << 20);
    }
}

#[test]
fn session_refuses_itself_and_unknown_senders() {
    let (mut a, b) = (session(0), session(1));
    let own = a.outgoing().unwrap();
    assert_eq!(a.incoming(0, &own), Err(Abort::UnknownParty { from: 0 }));
    let mut a = session(0);
    assert_eq!(
        a.incoming(7, &b.outgoing().unwrap()),
        Err(Abort::UnknownParty { from: 7 })
    );
}

#[test]
fn two_sessions_driven_by_hand_agree_and_then_refuse_more_frames() {
    let (mut a, mut b) = (session(0), session(1));
    let mut outputs = None;
    for _ in 0..32 {
        let (fa, fb) = (a.outgoing().unwrap(), b.outgoing().unwrap());
        match (a.incoming(1, &fb).unwrap(), b.incoming(0, &fa).unwrap()) {
            (Status::Done(x), Status::Done(y)) => {
                assert_eq!(x, y);
                outputs = Some(x);
                break;
            }
            (Status::Continue, Status::Continue) => {}
            other => panic!("parties out of step: {other:?}"),
        }
    }
    assert_eq!(outputs, Some(vec![Fp::ONE]));
    assert_eq!(a.outgoing().err(), Some(Abort::Ended("finished")));
    assert_eq!(a.incoming(1, &[]), Err(Abort::Ended("finished")));
}

#[test]
fn a_second_frame_from_one_party_in_a_round_is_refused() {
    let mut b = CircuitBuilder::new(3);
    let x = b.input(0);
    b.reveal(x);
    let circuit = b.build();
    let material = InsecureDealer::new(3, 1)
        .deal(&circuit.requirements())
        .remove(0);
    let cfg = SessionConfig::new(common::SESSION, 0, 3);
    let mut s = Session::new(cfg, circuit, vec![Fp::ONE], material).unwrap();
    // Party 1 has no inputs: its input-round frame carries no values.
    let empty = Frame {
        session: common::SESSION,
        round: 0,
        body: Body::Values(vec![]),
    }
    .encode();
    assert_eq!(s.incoming(1, &empty), Ok(Status::Continue));
    assert_eq!(s.incoming(1, &empty), Err(Abort::Duplicate { from: 1 }));
}
